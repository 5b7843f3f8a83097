import Foundation
import KVGossipControl
import KVGossipCore
import KVGossipMount
import KVGossipNode
import KVGossipSync

extension AgentRuntime {
    /// One scrape: the store counts its records (no record or value is read), the few revocations
    /// and grants are decoded, and the node's key states and refusals and the engine's peers and
    /// counters are copied.
    static func metrics(node: Node, engine: GossipEngine, mount: Mount?, startTime: Double, problems: [String]) async -> MetricsSnapshot {
        var m = MetricsSnapshot()
        m.version = KVGossipVersion.release
        m.startTimeSeconds = startTime
        m.records = (try? node.store.recordCount) ?? 0
        m.revocations = (try? node.store.revocations().count) ?? 0
        m.grants = (try? node.store.grants().count) ?? 0
        m.mounted = mount?.isMounted ?? false
        m.mountLosses = mount?.losses ?? 0
        m.helperRestarts = mount?.helperRestarts ?? 0
        m.problems = problems.count
        m.dirty = node.dirtyCounts(liveKeys: (try? node.store.valueCount) ?? 0)
        m.synced = !node.defaultKeyState.isDirty
        m.refusals = node.refusalCounts
        m.peers = engine.peers.map { p in
            MetricsSnapshot.Peer(
                name: p.name, address: p.address.description, lastSyncSeconds: p.lastSyncMs.map { Double($0) / 1000 },
                treeHashAgrees: p.agreed)
        }
        let counters = engine.gossipCounters
        m.syncSessions = ["ok": counters.sessionsOK, "failed": counters.sessionsFailed]
        m.pushes = ["ok": counters.pushesOK, "failed": counters.pushesFailed]
        m.batchesCheckedOnArrival = node.store.precheckedBatchesTaken
        return m
    }
}
