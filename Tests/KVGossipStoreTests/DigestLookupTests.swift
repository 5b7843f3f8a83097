import GRDB
import KVGossipCore
import Testing
@testable import KVGossipStore

/// The digests a push's receiver compares first, read on a connection of their own (`DigestLookup`).
@Suite struct DigestLookupTests {
    /// The lookup keeps its connection open between calls (`DigestLookup`): each call must still
    /// see every commit made before it, and must not hold a snapshot that keeps a checkpoint from
    /// starting the log over.
    @Test func digestsFollowLaterCommitsAndHoldNoSnapshot() throws {
        let t = try TempStore()
        let key = try Key("/app/a")
        #expect(try t.store.digestLookup.digests(of: [key]) == [nil])
        for counter in 1...3 {
            let r = StoreFixture.record("/app/a", "\(counter)", counter: UInt16(counter))
            #expect(try t.store.apply(r) == .accepted)
            #expect(try t.store.digestLookup.digests(of: [key]) == [r.digest])
        }
        // A full checkpoint that restarts the log waits for every reader to leave it.
        let restarted = try t.store.db.writeWithoutTransaction { db in
            try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(RESTART)")?[0] as Int?
        }
        #expect(restarted == 0, "a reader still held the log")
    }
}
