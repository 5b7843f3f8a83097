import KVGossipCore
import Testing
@testable import KVGossipControl

/// The Prometheus text rendering, against an exact expected text.
@Suite struct MetricsTextTests {
    @Test func aSnapshotRendersEveryFamilyWithStableLabels() {
        var m = MetricsSnapshot()
        m.version = "0.1.0"
        m.startTimeSeconds = 1_795_737_600
        m.records = 12
        m.revocations = 1
        m.grants = 2
        m.mounted = true
        m.dirty = [.pendingPush: 3]
        m.refusals = [.badSignature: 4]
        m.peers = [
            .init(name: "web-1", address: "10.0.0.1:7947", lastSyncSeconds: 1_795_737_601.5, treeHashAgrees: true),
            .init(name: "a\"b\\c", address: "10.0.0.2:7947", lastSyncSeconds: nil, treeHashAgrees: nil),
        ]
        m.syncSessions = ["ok": 5]
        m.pushes = ["ok": 7, "failed": 1]
        m.batchesCheckedOnArrival = 4
        let text = m.prometheusText
        let samples = text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map(String.init)
        let reasons = RefusalReason.allCases.map { r in "kvgossip_refusals_total{reason=\"\(r.rawValue)\"} \(r == .badSignature ? 4 : 0)" }
        #expect(samples == [
            "kvgossip_build_info{sync_protocol=\"2\",version=\"0.1.0\"} 1",
            "kvgossip_start_time_seconds 1795737600",
            "kvgossip_records 12",
            "kvgossip_revocations 1",
            "kvgossip_grants_held 2",
            "kvgossip_mounted 1",
            "kvgossip_mount_losses_total 0",
            "kvgossip_mount_helper_restarts_total 0",
            "kvgossip_problems 0",
            "kvgossip_synced 1",
            "kvgossip_dirty_keys{state=\"pending-push\"} 3",
            "kvgossip_dirty_keys{state=\"pending-fetch\"} 0",
            "kvgossip_dirty_keys{state=\"unsynced\"} 0",
        ] + reasons + [
            "kvgossip_peers 2",
            "kvgossip_peer_last_sync_timestamp_seconds{address=\"10.0.0.1:7947\",peer=\"web-1\"} 1795737601.5",
            "kvgossip_peer_tree_hash_agrees{address=\"10.0.0.1:7947\",peer=\"web-1\"} 1",
            "kvgossip_sync_sessions_total{result=\"ok\"} 5",
            "kvgossip_sync_sessions_total{result=\"failed\"} 0",
            "kvgossip_pushes_total{result=\"ok\"} 7",
            "kvgossip_pushes_total{result=\"failed\"} 1",
            "kvgossip_sync_batches_checked_on_arrival_total 4",
        ])
        // Every family has HELP and TYPE before its samples.
        #expect(text.hasPrefix("# HELP kvgossip_build_info "))
        #expect(text.contains("# TYPE kvgossip_refusals_total counter\n"))
        #expect(text.hasSuffix("\n"))
    }

    @Test func labelValuesAreEscaped() {
        #expect(MetricsText.escape("a\"b\\c\nd") == "a\\\"b\\\\c\\nd")
    }
}
