import Foundation
import KVGossipCore
import KVGossipNode
import KVGossipSync
import Logging
import Synchronization
import Testing
@testable import KVGossipStore

/// A peer's record is shown before its log is synced (Docs/architecture.md §Durability), so the
/// two answers a session draws from what readers see, a digest found (the sender is told
/// `duplicate`) and the tree hash (a peer finding it equal takes every record as held here), sync
/// the log first: neither may vouch for a record a power cut could still take.
struct StoreSyncStateTests {
    @Test func answersDrawnFromWhatReadersSeeSyncThePeersRecordsFirst() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-sync-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let root = SigningKey.generate()
        let store = try Store(directory: directory, root: root.publicKey)
        let node = try Node(store: store, key: root)
        let peer = PeerAddress(host: "10.0.0.2", port: 7947)
        let state = StoreSyncState(node: node, peer: peer, refusals: RefusalLog(logger: Logger(label: "test")))
        let records = try ["/a", "/b"].map { key in
            Record(cluster: root.publicKey, key: try Key(key), kind: .value, value: Array("v".utf8),
                   timestamp: HLC(physicalMs: UInt64(Date().timeIntervalSince1970 * 1000)), signer: root, pool: [])
        }
        // Asked from the commit observer: after the record is shown, before `apply` syncs it.
        let syncs = Mutex<[(before: Int, after: Int)]>([])
        let observation = store.observeCommits { _ in
            let before = store.walSync.completed
            if syncs.withLock({ $0.isEmpty }) {
                _ = try? state.storedDigests(of: [records[0].key])
            } else {
                _ = try? state.treeHash()
            }
            syncs.withLock { $0.append((before, store.walSync.completed)) }
        }
        defer { observation.cancel() }
        for record in records { #expect(try store.apply(record, origin: .pushed(by: peer)) == .accepted) }
        let seen = syncs.withLock { $0 }
        #expect(seen.count == 2 && seen.allSatisfy { $0.after == $0.before + 1 }, "syncs before and after each answer: \(seen)")
    }
}
