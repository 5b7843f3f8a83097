import Foundation
import GRDB
import KVGossipCore
import Testing
@testable import KVGossipStore

/// Stores written by earlier versions open with the same records and the same summary.
@Suite struct StoreMigrationTests {
    /// Before "records-entry-digest" the records' summary entries were rows of merkle_entries
    /// (space 0) and key_hash had a UNIQUE index of its own.
    @Test func storeFromBeforeTheEntryDigestColumnKeepsItsSummary() throws {
        let t = try TempStore()
        let first = (0..<300).map { StoreFixture.record("/app/k\($0)", "v\($0)") }
        #expect(try t.store.apply(first).allSatisfy(\.isAccepted))
        let hash = t.store.treeHash
        try Self.rewriteInTheEarlierLayout(Store.path(t.directory))
        try t.reopen()
        #expect(t.store.treeHash == hash)
        #expect(try t.store.recordCount == 300)

        // Later changes (half replace a key, half add one) read the leaves' entries from the
        // migrated rows: the root must be the one of a store that never had the earlier layout.
        let second = (0..<300).map { StoreFixture.record("/app/k\($0 * 2)", "w\($0)", counter: 1) }
        #expect(try t.store.apply(second).allSatisfy(\.isAccepted))
        let fresh = try TempStore()
        _ = try fresh.store.apply(first)
        _ = try fresh.store.apply(second)
        #expect(t.store.treeHash == fresh.store.treeHash)
        let found = try t.store.records(atKeyHashes: [SummaryEntries.keyHash(try Key("/app/k7")), SummaryEntries.keyHash(try Key("/app/k598"))], maxBytes: .max, firstAnySize: true).records
        #expect(found.map(\.key.path) == ["/app/k7", "/app/k598"])
    }

    /// The tables as the store kept them before the migration, from a store's current file.
    static func rewriteInTheEarlierLayout(_ path: String) throws {
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in
            try db.execute(sql: """
                CREATE TABLE records_old (
                    key TEXT PRIMARY KEY NOT NULL,
                    key_hash BLOB NOT NULL UNIQUE,
                    ts INTEGER NOT NULL,
                    kind INTEGER NOT NULL,
                    digest BLOB NOT NULL,
                    signer BLOB NOT NULL,
                    encoded BLOB NOT NULL
                );
                INSERT INTO records_old SELECT key, key_hash, ts, kind, digest, signer, encoded FROM records;
                INSERT INTO merkle_entries (space, id, digest) SELECT 0, key_hash, entry_digest FROM records;
                DROP TABLE records;
                ALTER TABLE records_old RENAME TO records;
                CREATE INDEX records_tombstones ON records (key) WHERE kind = 1;
                DELETE FROM grdb_migrations WHERE identifier IN ('records-entry-digest', 'records-history-versions');
                """)
        }
    }

    /// Before "records-history-versions" no row held its key's count of earlier versions: the
    /// migration leaves it unknown, and the key's next version in history counts and trims it.
    @Test func storeFromBeforeTheHistoryCountStillTrimsEachKeyToItsBound() throws {
        let bounds = HistoryBounds(versionsPerKey: 5, totalBytes: 1 << 20)
        let t = try TempStore(history: bounds)
        try HistoryStoreTests.write(t.store, "/k", (0..<6).map { "v\($0)" })
        let queue = try DatabaseQueue(path: Store.path(t.directory))
        try queue.write { db in
            try db.execute(sql: """
                ALTER TABLE records DROP COLUMN history_versions;
                DELETE FROM grdb_migrations WHERE identifier = 'records-history-versions';
                """)
        }
        try queue.close()
        try t.reopen(history: bounds)
        #expect(try HistoryStoreTests.historyCounts(t.store) == ["/k": nil])
        // A version that arrives already beaten counts the key too (and goes again: the key is full).
        #expect(try t.store.apply(StoreFixture.record("/k", "ancient", at: StoreFixture.now - 1)) != .accepted)
        #expect(try HistoryStoreTests.historyCounts(t.store) == ["/k": 5])
        try HistoryStoreTests.write(t.store, "/k", ["v6", "v7"], from: StoreFixture.now + 1)
        #expect(try HistoryStoreTests.values(t.store, "/k") == ["v7", "v6", "v5", "v4", "v3", "v2"])
        #expect(try HistoryStoreTests.historyCounts(t.store) == ["/k": 5])
    }
}
