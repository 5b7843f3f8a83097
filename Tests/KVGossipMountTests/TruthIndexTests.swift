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
}
