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
        m.problems = problems.count
        m.dirty = node.dirtyCounts
        m.synced = !node.defaultKeyState.isDirty
        m.refusals = node.refusalCounts
        m.peers = await engine.peerRecords().map { r in
            MetricsSnapshot.Peer(
                name: r.peer.name, address: r.peer.address.description, lastSyncSeconds: r.lastSync?.timeIntervalSince1970,
                treeHashAgrees: r.agreed)
        }
        m.syncSessions = await engine.sessionResults
        m.pushes = await engine.pushResults
        return m
    }
}
