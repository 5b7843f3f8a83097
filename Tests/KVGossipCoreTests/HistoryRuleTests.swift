import Testing
@testable import KVGossipCore

@Suite struct HistoryRuleTests {
    let small = HistoryBounds(versionsPerKey: 3, totalBytes: 1_000)

    @Test func aVersionEntersHistoryUnlessHistoryIsOffOrItExceedsTheWholeBudget() {
        #expect(HistoryRule.admits(bytes: 1_000, bounds: small))
        #expect(!HistoryRule.admits(bytes: 1_001, bounds: small))
        #expect(!HistoryRule.admits(bytes: 1, bounds: .off))
        #expect(!HistoryRule.admits(bytes: 1, bounds: HistoryBounds(versionsPerKey: 0, totalBytes: 1_000)))
    }

    @Test func aKeyKeepsAtMostItsBoundOfEarlierVersions() {
        #expect(HistoryRule.versionsKeptPerKey(small) == 3)
        #expect(HistoryRule.versionsKeptPerKey(.off) == 0)
        #expect(HistoryRule.versionsKeptPerKey(HistoryBounds(versionsPerKey: 3, totalBytes: 0)) == 0)
    }

    @Test func theBudgetDropsTheOldestArrivalsUntilTheTotalFits() {
        // 1,300 bytes against 1,000: the first two (500 + 200) are not enough, the third is.
        let drop = HistoryRule.dropsForBudget(totalBytes: 1_300, oldestFirst: [200, 50, 400, 600], bounds: small)
        #expect(drop.count == 3 && drop.freed == 650)
        #expect(HistoryRule.dropsForBudget(totalBytes: 1_000, oldestFirst: [200], bounds: small) == (0, 0))
        // Not enough given: all of them go, and the caller asks for more.
        #expect(HistoryRule.dropsForBudget(totalBytes: 5_000, oldestFirst: [10, 20], bounds: small) == (2, 30))
        #expect(HistoryRule.dropsForBudget(totalBytes: 30, oldestFirst: [10, 20], bounds: .off) == (2, 30))
    }

    @Test func aVersionThatBringsBackAnEarlierValueNamesIt() {
        let (a, b, c) = (Hash256.of(Array("a".utf8)), Hash256.of(Array("b".utf8)), Hash256.of(Array("c".utf8)))
        // Newest first: a (revert to the first a), c, b, a.
        let versions: [(kind: Record.Kind, valueHash: Hash256)] = [(.value, a), (.value, c), (.value, b), (.value, a)]
        #expect(HistoryRule.restoredVersions(newestFirst: versions) == [3, nil, nil, nil])
        // The same value written twice in a row brings nothing back; a value after a delete does.
        let empty = Hash256.of([])
        #expect(HistoryRule.restoredVersions(newestFirst: [(.value, a), (.value, a)]) == [nil, nil])
        #expect(HistoryRule.restoredVersions(newestFirst: [(.value, a), (.tombstone, empty), (.value, a)]) == [2, nil, nil])
        // A tombstone brings back nothing, even after an earlier tombstone.
        #expect(HistoryRule.restoredVersions(newestFirst: [(.tombstone, empty), (.value, b), (.tombstone, empty)]) == [nil, nil, nil])
    }

    @Test func standingTellsAValidChainFromARevokedOne() {
        let grant = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**"])
        let record = Fixture.record("/app/x", by: Fixture.alice, pool: [grant])
        let validator = Fixture.validator()
        #expect(ChainStanding(of: record, validator: validator, isRevoked: { _ in false }) == .valid(chain: [grant]))
        let revoked = ChainStanding(of: record, validator: validator, isRevoked: { $0 == grant.id })
        #expect(revoked == .revoked(grants: [grant.id]) && revoked.label == "revoked")
        let stranger = Fixture.record("/other", by: Fixture.alice, pool: [grant])
        #expect(ChainStanding(of: stranger, validator: validator, isRevoked: { _ in false }).label == "no-authority")
        #expect(ChainStanding(of: Fixture.record("/x", by: Fixture.root), validator: validator, isRevoked: { _ in false }) == .valid(chain: []))
    }
}

@Suite struct LineDiffTests {
    @Test func changedLinesShowAsRemovedThenAdded() {
        let diff = LineDiff.compare(old: Array("a\nb\nc\n".utf8), new: Array("a\nB\nc\nd\n".utf8))
        #expect(diff == .lines([.same("a"), .removed("b"), .added("B"), .same("c"), .added("d")]))
    }

    @Test func emptyAndIdenticalValues() {
        #expect(LineDiff.compare(old: [], new: Array("x".utf8)) == .lines([.added("x")]))
        #expect(LineDiff.compare(old: Array("x\n".utf8), new: []) == .lines([.removed("x")]))
        #expect(LineDiff.compare(old: Array("x\ny".utf8), new: Array("x\ny".utf8)) == .lines([.same("x"), .same("y")]))
    }

    @Test func binaryAndHugeValuesAreSummarized() {
        #expect(LineDiff.compare(old: [0xff, 0xfe], new: Array("x".utf8)) == .binary)
        let many = Array(String(repeating: "line\n", count: 3_000).utf8)
        #expect(LineDiff.compare(old: many, new: many + Array("more\n".utf8)) == .tooLarge)
    }
}
