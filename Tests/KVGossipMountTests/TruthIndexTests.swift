import KVGossipCore
import Testing
@testable import KVGossipMount

/// The truth's per-directory counts, which decide whether a path is shown as a directory: they
/// follow keys going live and dead at every level, and an emptied directory leaves no count behind.
@Suite struct TruthIndexTests {
    static func record(_ key: String, _ value: String?, at ms: UInt64) -> Record {
        ReplayPlanTests.record(key, value, at: 1_795_737_600_000 + ms)
    }

    @Test func directoriesFollowTheLiveKeysBelowThem() {
        var truth = TruthIndex(scratch: ScratchNames(patterns: MountOptions.defaultScratchPatterns))
        truth.apply(Self.record("/a/b/c", "1", at: 1))
        truth.apply(Self.record("/a/d", "2", at: 1))
        truth.apply(Self.record("/a/b/e", "3", at: 1))
        #expect(truth.hasDescendants("/a") && truth.hasDescendants("/a/b") && truth.hasDescendants("/"))
        #expect(Set(truth.childNames("/a")) == ["b", "d"])
        #expect(Set(truth.childNames("/a/b")) == ["c", "e"])

        // A newer value of a live key changes no count; an older one is refused.
        let newer = truth.apply(Self.record("/a/b/c", "1'", at: 2))
        let older = truth.apply(Self.record("/a/b/c", "0", at: 1))
        #expect(newer && !older)
        #expect(Set(truth.childNames("/a/b")) == ["c", "e"])

        truth.apply(Self.record("/a/b/c", nil, at: 3))
        #expect(truth.childNames("/a/b") == ["e"])
        truth.apply(Self.record("/a/b/e", nil, at: 3))
        #expect(!truth.hasDescendants("/a/b"))
        #expect(truth.childNames("/a") == ["d"])
        let unset = truth.unset(try! Key("/a/d"), previous: Self.record("/a/d", "2", at: 1).version)
        #expect(unset)
        #expect(!truth.hasDescendants("/a") && !truth.hasDescendants("/"))
        #expect(truth.childNames("/").isEmpty)

        // A key live again counts again.
        truth.apply(Self.record("/a/b/c", "4", at: 4))
        #expect(truth.childNames("/a") == ["b"] && truth.childNames("/") == ["a"])
    }

    /// The start's loader gives the index `apply` gives, whatever the order of the records: the
    /// store's key order (a directory's keys together, its subdirectories' keys between them),
    /// shuffled, and with a key given twice.
    @Test func loadingGivesWhatApplyingGives() {
        var records: [Record] = []
        var generator = SystemRandomNumberGenerator()
        for d in 0..<6 {
            for k in 0..<8 {
                let value: String? = (d + k) % 5 == 0 ? nil : "v\(d)\(k)"
                records.append(Self.record("/t/d\(d)/k\(k)", value, at: UInt64(d * 10 + k)))
            }
            records.append(Self.record("/t/d\(d)", "a key that is also a directory", at: 100))
            records.append(Self.record("/t/d\(d)/sub/deep/k", "below", at: 101))
        }
        records.append(Self.record("/top", "at the root", at: 102))
        records.append(Self.record("/t/d1/k1.swp", "a scratch name", at: 103))
        let scratch = ScratchNames(patterns: MountOptions.defaultScratchPatterns)
        var applied = TruthIndex(scratch: scratch)
        for r in records { applied.apply(r) }

        let sorted = records.sorted { $0.key.path < $1.key.path }
        let newerTwin = Self.record("/t/d2/k3", "newer", at: 500)
        let olderTwin = Self.record("/t/d2/k4", "older", at: 1)
        var appliedWithTwins = applied
        appliedWithTwins.apply(newerTwin)
        appliedWithTwins.apply(olderTwin)
        for (order, expected) in [(sorted, applied), (records.shuffled(using: &generator), applied),
                                  (sorted + [newerTwin, olderTwin], appliedWithTwins)] {
            var loaded = TruthIndex(scratch: scratch)
            for r in order { loaded.load(r) }
            loaded.finishLoading()
            #expect(loaded.entries == expected.entries)
            #expect(loaded.below == expected.below)
        }
        #expect(applied.hasDescendants("/t/d3") && applied.hasDescendants("/t") && !applied.hasDescendants("/top"))
    }
}
