import Foundation
import GRDB
import KVGossipCore
import Testing
@testable import KVGossipStore

/// Earlier versions kept beside the current one (Docs/history.md): written in the transaction that
/// replaces a record, trimmed by the per-key bound and the byte budget, never part of the tree hash.
@Suite struct HistoryStoreTests {
    static func write(_ store: Store, _ key: String, _ values: [String], from ms: UInt64 = StoreFixture.now) throws {
        for (i, v) in values.enumerated() {
            #expect(try store.apply(StoreFixture.record(key, v, at: ms, counter: UInt16(i))) == .accepted)
        }
    }

    static func values(_ store: Store, _ key: String) throws -> [String] {
        try store.versions(of: Key(key)).map { String(decoding: $0.record.value, as: UTF8.self) }
    }

    /// The bytes the history table really holds, to check the running total against.
    static func summedBytes(_ store: Store) throws -> Int {
        try store.db.read { try Int.fetchOne($0, sql: "SELECT COALESCE(SUM(size), 0) FROM history") ?? 0 }
    }

    /// Each key row's count of earlier versions (nil where not known).
    static func historyCounts(_ store: Store) throws -> [String: Int?] {
        try store.db.read { db in
            Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT key, history_versions FROM records").map { ($0[0] as String, $0[1] as Int?) })
        }
    }

    /// The count each key's row keeps may run high (a trim by the budget lowers it only at the key's
    /// next trim) but never low, or a key could pass its bound unseen.
    static func expectCountsNeverLow(_ store: Store, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let held = try store.db.read { db in
            Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT key, COUNT(*) FROM history GROUP BY key").map { ($0[0] as String, $0[1] as Int) })
        }
        for (key, count) in try historyCounts(store) {
            guard let count else { continue }
            #expect(count >= held[key, default: 0], "\(key) counts \(count) earlier versions but history holds \(held[key, default: 0])", sourceLocation: sourceLocation)
        }
    }

    @Test func aReplacedVersionStaysInHistoryNewestFirstAndOutOfTheTreeHash() throws {
        let t = try TempStore(), plain = try TempStore(history: .off)
        for store in [t.store, plain.store] { try Self.write(store, "/k", ["one", "two", "three"]) }
        let versions = try t.store.versions(of: Key("/k"))
        #expect(versions.map(\.isCurrent) == [true, false, false])
        #expect(try Self.values(t.store, "/k") == ["three", "two", "one"])
        #expect(try Self.values(plain.store, "/k") == ["three"])
        #expect(t.store.treeHash == plain.store.treeHash)
        // Paged by version: below the newest, one at a time.
        #expect(try t.store.versions(of: Key("/k"), below: versions[0].record.version, limit: 1).map(\.record) == [versions[1].record])
        #expect(try t.store.historyUsage == HistoryUsage(versions: 2, bytes: versions[1...].reduce(0) { $0 + $1.record.encoded.count }))
    }

    @Test func aVersionThatArrivesAlreadyBeatenIsKeptOnce() throws {
        let t = try TempStore()
        let old = StoreFixture.record("/k", "old", at: StoreFixture.now)
        let new = StoreFixture.record("/k", "new", at: StoreFixture.now + 1)
        #expect(try t.store.apply(new) == .accepted)
        #expect(try t.store.apply(old) == .superseded(current: new.version))
        #expect(try t.store.apply(old) == .superseded(current: new.version))
        #expect(try Self.values(t.store, "/k") == ["new", "old"])
        #expect(try t.store.historyUsage.versions == 1)
        #expect(try Self.historyCounts(t.store) == ["/k": 1])
    }

    @Test func eachKeyKeepsItsBoundOfItsNewestEarlierVersions() throws {
        let t = try TempStore(history: HistoryBounds(versionsPerKey: 3, totalBytes: 1 << 20))
        try Self.write(t.store, "/k", (0..<10).map { "v\($0)" })
        try Self.write(t.store, "/other", ["a", "b"])
        #expect(try Self.values(t.store, "/k") == ["v9", "v8", "v7", "v6"])
        #expect(try Self.values(t.store, "/other") == ["b", "a"])
        // A beaten version older than all a full key keeps goes straight out again.
        _ = try t.store.apply(StoreFixture.record("/k", "ancient", at: StoreFixture.now - 1))
        #expect(try Self.values(t.store, "/k") == ["v9", "v8", "v7", "v6"])
        #expect(try t.store.historyUsage.bytes == Self.summedBytes(t.store))
        #expect(try Self.historyCounts(t.store) == ["/k": 3, "/other": 1])
    }

    @Test func theByteBudgetLetsTheOldestArrivalsGo() throws {
        let one = StoreFixture.record("/a", "x").encoded.count
        let t = try TempStore(history: HistoryBounds(versionsPerKey: 100, totalBytes: one * 5))
        for key in ["/a", "/b", "/c", "/d"] { try Self.write(t.store, key, ["x", "y", "z"]) }
        let usage = try t.store.historyUsage
        #expect(usage.bytes <= one * 5 && usage.versions == 5)
        #expect(usage.bytes == (try Self.summedBytes(t.store)))
        // The first arrivals (/a's and one of /b's) went; the latest keys kept theirs.
        #expect(try Self.values(t.store, "/a") == ["z"])
        #expect(try Self.values(t.store, "/d") == ["z", "y", "x"])
        try Self.expectCountsNeverLow(t.store)
        // /a's count ran high when the budget took its versions; far from its bound, a new version
        // is kept without a walk and the count stays high, never low.
        try Self.write(t.store, "/a", ["w"], from: StoreFixture.now + 1)
        #expect(try Self.values(t.store, "/a") == ["w", "z"])
        try Self.expectCountsNeverLow(t.store)
    }

    /// A count left high (here by a bound lowered and raised again across opens) is set right by
    /// the walk its key's next version takes when the count says the key is past its bound.
    @Test func aCountLeftHighIsSetRightByTheNextWalk() throws {
        let five = HistoryBounds(versionsPerKey: 5, totalBytes: 1 << 20)
        let t = try TempStore(history: five)
        try Self.write(t.store, "/k", (0..<6).map { "v\($0)" })
        #expect(try Self.historyCounts(t.store) == ["/k": 5])
        try t.reopen(history: HistoryBounds(versionsPerKey: 2, totalBytes: 1 << 20))
        try t.reopen(history: five)
        #expect(try Self.values(t.store, "/k") == ["v5", "v4", "v3"])
        #expect(try Self.historyCounts(t.store) == ["/k": 5])
        try Self.write(t.store, "/k", ["v6"], from: StoreFixture.now + 1)
        #expect(try Self.values(t.store, "/k") == ["v6", "v5", "v4", "v3"])
        #expect(try Self.historyCounts(t.store) == ["/k": 3])
    }

    /// A revocation that prunes a pool rewrites the row and keeps its count; one that unsets the key
    /// copies the row into history by itself (the cascade's lookup brings no encoding).
    @Test func aPrunedPoolKeepsItsCountAndAnUnsetCopiesTheRow() throws {
        let t = try TempStore()
        let wide = StoreFixture.grant(StoreFixture.root, to: StoreFixture.alice, ["/app/**"], nonce: 1)
        let narrow = StoreFixture.grant(StoreFixture.root, to: StoreFixture.alice, ["/app/keep"], nonce: 2)
        for (i, v) in ["k1", "k2"].enumerated() {
            #expect(try t.store.apply(StoreFixture.record("/app/keep", v, by: StoreFixture.alice, pool: [wide, narrow], at: StoreFixture.now + UInt64(i))) == .accepted)
        }
        for (i, v) in ["l1", "l2"].enumerated() {
            #expect(try t.store.apply(StoreFixture.record("/app/lose", v, by: StoreFixture.alice, pool: [wide], at: StoreFixture.now + UInt64(i))) == .accepted)
        }
        let revocation = Revocation(cluster: StoreFixture.root.publicKey, grantID: wide.id, revokedAt: StoreFixture.now, signer: StoreFixture.root)
        #expect(try t.store.apply(revocation) == .accepted(unset: [try Key("/app/lose")], pruned: [try Key("/app/keep")]))
        #expect(try Self.historyCounts(t.store) == ["/app/keep": 1])
        #expect(try Self.values(t.store, "/app/keep") == ["k2", "k1"])
        #expect(try Self.values(t.store, "/app/lose") == ["l2", "l1"])
        #expect(try t.store.historyUsage.bytes == Self.summedBytes(t.store))
    }

    /// Acceptance: the bounds hold under 10,000 writes to one key, and the running byte total stays
    /// true to what the table holds.
    @Test func boundsHoldUnderTenThousandWritesToOneKey() throws {
        let bounds = HistoryBounds(versionsPerKey: 100, totalBytes: 16 * 1024)
        let t = try TempStore(history: bounds)
        let key = "/busy/key"
        for batch in 0..<100 {
            let records = (0..<100).map { i -> KVGossipCore.Record in
                let n = batch * 100 + i
                return StoreFixture.record(key, "value number \(n) " + String(repeating: "x", count: n % 50), at: StoreFixture.now + UInt64(n))
            }
            #expect(try t.store.apply(records).allSatisfy { $0 == .accepted })
        }
        let usage = try t.store.historyUsage
        let versions = try t.store.versions(of: Key(key))
        print("history after 10,000 writes to one key: \(usage.versions) versions, \(usage.bytes) bytes (bounds: \(bounds.versionsPerKey) versions, \(bounds.totalBytes) bytes)")
        #expect(usage.bytes <= bounds.totalBytes && usage.versions <= bounds.versionsPerKey)
        #expect(usage.bytes == (try Self.summedBytes(t.store)))
        #expect(versions.first?.isCurrent == true && String(decoding: versions[0].record.value, as: UTF8.self).hasPrefix("value number 9999 "))
        // What is kept is the newest: consecutive, ending just below the current version.
        let numbers = versions.map { Int(String(decoding: $0.record.value, as: UTF8.self).split(separator: " ")[2])! }
        #expect(numbers == Array((10_000 - numbers.count)..<10_000).reversed())
        try Self.expectCountsNeverLow(t.store)
    }

    @Test func aKeyUnsetByARevocationKeepsItsVersionsWithNoCurrentOne() throws {
        let t = try TempStore()
        let grant = StoreFixture.grant(StoreFixture.root, to: StoreFixture.alice, ["/app/**"])
        _ = try t.store.apply(StoreFixture.record("/app/x", "by root", at: StoreFixture.now))
        _ = try t.store.apply(StoreFixture.record("/app/x", "by alice", by: StoreFixture.alice, pool: [grant], at: StoreFixture.now + 1))
        let revocation = Revocation(cluster: StoreFixture.root.publicKey, grantID: grant.id, revokedAt: StoreFixture.now, signer: StoreFixture.root)
        #expect(try t.store.apply(revocation) == .accepted(unset: [try Key("/app/x")], pruned: []))
        let versions = try t.store.versions(of: Key("/app/x"))
        #expect(versions.map(\.isCurrent) == [false, false])
        #expect(try Self.values(t.store, "/app/x") == ["by alice", "by root"])
        #expect(try t.store.keysWithVersions(matching: Pattern("/app/**"), after: nil, rowLimit: 10).keys == [try Key("/app/x")])
    }

    /// A key unset by a revocation keeps its versions; a new row for it counts them, so its bound
    /// holds from its next version on.
    @Test func aKeyWrittenAgainAfterAnUnsetCountsTheVersionsItKept() throws {
        let t = try TempStore(history: HistoryBounds(versionsPerKey: 3, totalBytes: 1 << 20))
        let grant = StoreFixture.grant(StoreFixture.root, to: StoreFixture.alice, ["/app/**"])
        _ = try t.store.apply(StoreFixture.record("/app/x", "a", at: StoreFixture.now))
        for (i, v) in ["b", "c"].enumerated() {
            _ = try t.store.apply(StoreFixture.record("/app/x", v, by: StoreFixture.alice, pool: [grant], at: StoreFixture.now + 1 + UInt64(i)))
        }
        let revocation = Revocation(cluster: StoreFixture.root.publicKey, grantID: grant.id, revokedAt: StoreFixture.now, signer: StoreFixture.root)
        #expect(try t.store.apply(revocation) == .accepted(unset: [try Key("/app/x")], pruned: []))
        try Self.write(t.store, "/app/x", ["d"], from: StoreFixture.now + 10)
        #expect(try Self.historyCounts(t.store) == ["/app/x": 3])
        try Self.write(t.store, "/app/x", ["e"], from: StoreFixture.now + 11)
        #expect(try Self.values(t.store, "/app/x") == ["e", "d", "c", "b"])
        #expect(try Self.historyCounts(t.store) == ["/app/x": 3])
    }

    @Test func loweredBoundsApplyAtTheNextOpenAndAReaderSeesWhatIsKept() throws {
        let t = try TempStore()
        try Self.write(t.store, "/k", ["1", "2", "3", "4"])
        try t.reopen(history: HistoryBounds(versionsPerKey: 1, totalBytes: 1 << 20))
        #expect(try Self.values(t.store, "/k") == ["4", "3"])
        try Self.expectCountsNeverLow(t.store)
        #expect(try t.store.historyUsage.bytes == Self.summedBytes(t.store))
        let reader = try Store(readingDirectory: t.directory)
        #expect(reader.root == StoreFixture.root.publicKey)
        #expect(try Self.values(reader, "/k") == ["4", "3"])
        try t.reopen(history: .off)
        #expect(try Self.values(t.store, "/k") == ["4"])
        #expect(try t.store.historyUsage == HistoryUsage(versions: 0, bytes: 0))
    }

    @Test func keysWithVersionsPageInKeyOrder() throws {
        let t = try TempStore()
        for key in ["/p/a", "/p/b", "/p/c", "/q"] { try Self.write(t.store, key, ["1", "2"]) }
        let first = try t.store.keysWithVersions(matching: Pattern("/p/*"), after: nil, rowLimit: 2)
        #expect(first.keys.map(\.path) == ["/p/a", "/p/b"] && first.next == "/p/b")
        let second = try t.store.keysWithVersions(matching: Pattern("/p/*"), after: first.next, rowLimit: 2)
        #expect(second.keys.map(\.path) == ["/p/c"] && second.next == nil)
    }
}
