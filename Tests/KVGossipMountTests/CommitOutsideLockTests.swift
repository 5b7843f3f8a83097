import Glibc
import KVGossipCore
import Testing
@testable import KVGossipMount

/// A save minted outside the state lock (Docs/filesystem.md §Writing: one save, one record), on a
/// state with no kernel attached: between `prepareCommit` and `finishCommit` the key's attributes
/// must not be cached and the follower must not replay the mount's own record.
@Suite struct CommitOutsideLockTests {
    /// Key /k shows "one"; a writer opened with O_TRUNC wrote "two" and its FLUSH was prepared.
    static func saveOfTwoOverOne() throws -> (FSState, UInt64, UInt64, Record, FSState.PendingCommit) {
        var st = try ReplayPlanTests.state()
        let first = ReplayPlanTests.record("/k", "one", at: 1_000)
        st.truth.apply(first)
        st.view.insert("/k", .key(st.truth.liveEntry("/k"), mtimeMs: 1), nowMs: 1)
        let ino = try st.lookup(InodeTable.rootID, "k").ino
        let out = try st.open(ino, flags: O_WRONLY | O_TRUNC, isSelf: false)
        #expect(try st.write(out.fh, Array("two".utf8), offset: 0) == 3)
        let pending = try #require(try st.flush(out.fh))
        return (st, ino, out.fh, first, pending)
    }

    @Test func aKeyBeingSavedIsAnsweredUncachedAndNotReplayedUntilShown() throws {
        let (state, ino, fh, _, pending) = try Self.saveOfTwoOverOne()
        var st = state
        #expect(pending.path == "/k" && pending.bytes == Array("two".utf8))
        #expect(st.attr("/k", ino: ino)?.volatile == true)

        // The store's change for the record reaches the follower before the handler shows it.
        let second = ReplayPlanTests.record("/k", "two", at: 2_000)
        st.truth.apply(second)
        #expect(st.nextOp(for: "/k") == .write("/k"))
        #expect(st.nextReplayStep(for: "/k") == nil)

        // The follower passed over the path, so the save's end must wake it.
        #expect(try st.finishCommit(pending, .success(second)))
        #expect(st.attr("/k", ino: ino)?.volatile == false)
        #expect(st.view["/k"]?.shown?.version == second.version)
        #expect(st.nextReplayStep(for: "/k") == nil)
        #expect(st.pendingReconciles.contains("/k"))
        // Nothing left to commit: the handle's buffer is the record.
        #expect(try st.flush(fh) == nil)
    }

    @Test func aSaveTheFollowerDidNotLookAtWakesNobody() throws {
        let (state, ino, fh, _, pending) = try Self.saveOfTwoOverOne()
        var st = state
        let second = ReplayPlanTests.record("/k", "two", at: 2_000)
        #expect(try st.finishCommit(pending, .success(second)) == false)
        // Its own change, taken at the follower's next wake-up, finds nothing to replay.
        st.truth.apply(second)
        #expect(st.nextReplayStep(for: "/k") == nil)
        // Nor does the writer's RELEASE after the FLUSH that saved leave it anything to do.
        #expect(st.release(fh, committed: false) == false)
        #expect(st.attr("/k", ino: ino)?.volatile == false)
    }

    @Test func aFailedMintLeavesTheOldValueShownAndTheKeyCacheable() throws {
        let (state, ino, _, first, pending) = try Self.saveOfTwoOverOne()
        var st = state
        #expect(throws: FSError.self) { try st.finishCommit(pending, .failure(FSError(EIO))) }
        #expect(st.attr("/k", ino: ino)?.volatile == false)
        #expect(st.view["/k"]?.shown?.version == first.version)
    }
}
