import KVGossipCore
import KVGossipStore
import Testing
@testable import KVGossipMount

/// The value cache never answers with a version older than the store's, whatever order commits
/// are observed in and however a miss races a commit.
@Suite struct ValueCacheTests {
    static func record(_ value: String?, at ms: UInt64) -> Record {
        ReplayPlanTests.record("/c/k", value, at: ms)
    }

    static func value(_ r: Record) -> ValueCache.Value {
        ValueCache.Value(version: r.version, bytes: r.value)
    }

    static func cached(_ cache: ValueCache) -> String? {
        if case .hit(let v) = cache.lookup("/c/k") { return String(decoding: v.bytes, as: UTF8.self) }
        return nil
    }

    static func ticket(_ cache: ValueCache) -> ValueCache.Ticket {
        guard case .miss(let t) = cache.lookup("/c/k") else { fatalError("expected a miss") }
        return t
    }

    @Test func aMissFilledBeforeAnyCommitIsKept() {
        let cache = ValueCache(budgetBytes: 1 << 20)
        cache.insert("/c/k", Self.value(Self.record("one", at: 1000)), ticket: Self.ticket(cache))
        #expect(Self.cached(cache) == "one")
    }

    @Test func aMissThatRacedACommitIsNotInserted() {
        let cache = ValueCache(budgetBytes: 1 << 20)
        let ticket = Self.ticket(cache)
        // The store committed "two" after the miss read "one" from SQLite.
        cache.observe([.record(Self.record("two", at: 2000), previous: nil, origin: .local)])
        cache.insert("/c/k", Self.value(Self.record("one", at: 1000)), ticket: ticket)
        #expect(Self.cached(cache) == nil)
    }

    @Test func aNewerCommitReplacesAndALateOlderOneDrops() {
        let cache = ValueCache(budgetBytes: 1 << 20)
        cache.insert("/c/k", Self.value(Self.record("one", at: 1000)), ticket: Self.ticket(cache))
        cache.observe([.record(Self.record("three", at: 3000), previous: nil, origin: .local)])
        #expect(Self.cached(cache) == "three")
        // An older version published after a newer one may trail an unset not yet published
        // (a revocation): the entry goes, and the next open asks the store.
        cache.observe([.record(Self.record("two", at: 2000), previous: nil, origin: .local)])
        #expect(Self.cached(cache) == nil)
    }

    @Test func aCommitTooLargeForTheBudgetDropsTheEntry() {
        let cache = ValueCache(budgetBytes: 1000)
        cache.insert("/c/k", Self.value(Self.record("small", at: 1000)), ticket: Self.ticket(cache))
        cache.observe([.record(Self.record(String(repeating: "x", count: 600), at: 2000), previous: nil, origin: .local)])
        #expect(Self.cached(cache) == nil)
    }

    @Test func tombstonesAndUnsetsDropTheEntry() throws {
        let cache = ValueCache(budgetBytes: 1 << 20)
        cache.insert("/c/k", Self.value(Self.record("one", at: 1000)), ticket: Self.ticket(cache))
        cache.observe([.record(Self.record(nil, at: 2000), previous: nil, origin: .local)])
        #expect(Self.cached(cache) == nil)
        // A late commit of an older value does not bring it back.
        cache.observe([.record(Self.record("one and a half", at: 1500), previous: nil, origin: .local)])
        #expect(Self.cached(cache) == nil)

        cache.insert("/c/k", Self.value(Self.record("four", at: 4000)), ticket: Self.ticket(cache))
        cache.observe([.unset(try Key("/c/k"), previous: Self.record("four", at: 4000).version)])
        #expect(Self.cached(cache) == nil)
    }

    /// Each entry is charged its path and a fixed overhead besides its bytes, so a tree of tiny
    /// values cannot hold more entries than the budget pays for.
    @Test func theBudgetBoundsWhatIsKept() {
        let perEntry = ValueCache.charge(path: "/c/k10", bytes: 100)
        #expect(perEntry > 100)
        let cache = ValueCache(budgetBytes: perEntry * 10)
        for i in 0..<50 {
            let path = "/c/k\(i + 10)"
            guard case .miss(let t) = cache.lookup(path) else { continue }
            let r = ReplayPlanTests.record(path, String(repeating: "x", count: 100), at: 1000)
            cache.insert(path, Self.value(r), ticket: t)
        }
        let kept = (0..<50).filter { if case .hit = cache.lookup("/c/k\($0 + 10)") { true } else { false } }.count
        #expect(kept == 10)
    }

    /// Eviction goes oldest first, whatever the dictionary's order: evicting in bucket order packed
    /// the rest of a large cache into long runs that every lookup had to probe. A path dropped and
    /// put again, and paths dropped meanwhile, keep the budget exact and the newest entries in.
    @Test func theOldestEntriesAreEvictedFirst() {
        let perEntry = ValueCache.charge(path: "/c/k1000", bytes: 100)  // the last entries' path length
        let cache = ValueCache(budgetBytes: perEntry * 10)
        func put(_ i: Int, at ms: UInt64 = 1000) {
            let path = "/c/k\(i + 10)"
            guard case .miss(let t) = cache.lookup(path) else { return }
            cache.insert(path, Self.value(ReplayPlanTests.record(path, String(repeating: "x", count: 100), at: ms)), ticket: t)
        }
        func kept() -> [Int] {
            (0..<2_000).filter { if case .hit = cache.lookup("/c/k\($0 + 10)") { true } else { false } }
        }
        for i in 0..<10 { put(i) }
        // Two entries dropped by tombstones, one of them put again later: its old place in the
        // order is stale and must not cost a newer entry its place.
        for i in [3, 5] {
            let path = "/c/k\(i + 10)"
            cache.observe([.record(ReplayPlanTests.record(path, nil, at: 2000), previous: nil, origin: .local)])
        }
        put(5, at: 3000)
        // The eleventh put on evicts the oldest live entries in turn, skipping the places of the two
        // dropped paths: the key put again is younger than 6…15's predecessors and stays.
        for i in 10..<16 { put(i) }
        #expect(kept() == [5] + Array(7..<16))
        for i in 16..<1_990 { put(i) }
        #expect(kept() == Array(1_980..<1_990))
        for i in 1_990..<2_000 { put(i) }
        #expect(kept() == Array(1_990..<2_000))
    }
}
