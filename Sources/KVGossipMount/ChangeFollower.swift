import CFuse3
import Dispatch
import Foundation
import KVGossipCore
import KVGossipStore
import Synchronization

/// Changes the store committed and the follower has not taken yet. Filled on the committing thread
/// (a store commit observer: an append and a wake-up, no other lock), so a change reaches the
/// follower's thread directly, not through a change-feed reader that must itself be scheduled first.
/// Unbounded on purpose, as the feed is: a dropped change would leave a stale file; the follower
/// drains it at every wake-up.
final class ChangeInbox: Sendable {
    private let state = Mutex<(changes: [StoreChange], stopping: Bool)>(([], false))
    private let wake: DispatchSemaphore

    init(wake: DispatchSemaphore) {
        self.wake = wake
    }

    /// Changes held without a wake-up, at most: past this even quiet changes wake the follower,
    /// so the records they carry (values included) do not pile up between its wake-ups.
    static let quietLimit = 16

    /// `quiet`: the change needs no prompt look (the mount's own save, which its handler shows
    /// itself); the follower takes it at its next wake-up, at the latest after a second.
    func add(_ changes: [StoreChange], quiet: Bool = false) {
        let held = state.withLock { s -> Int in
            s.changes += changes
            return s.changes.count
        }
        if !quiet || held > Self.quietLimit { wake.signal() }
    }

    /// Everything added so far, and whether the follower should stop.
    func take() -> (changes: [StoreChange], stopping: Bool) {
        state.withLock { s in
            defer { s.changes = [] }
            return (s.changes, s.stopping)
        }
    }

    func stop() {
        state.withLock { $0.stopping = true }
        wake.signal()
    }
}

/// Replays changes that did not come through the mount (gossip, the CLI, the control API) so that
/// watchers see them as they would see a local edit. It runs on its own thread, never a FUSE worker
/// and never holding the state lock, and has the replay helper (a separate process, see
/// `ReplayHelper`) perform ordinary file operations in the mount; the handlers recognise the
/// helper's requests and update the view without minting. The kernel, seeing real creates, writes
/// and unlinks, raises IN_CREATE / IN_MODIFY / IN_CLOSE_WRITE / IN_DELETE itself.
///
/// Changes minted through the mount need no replay: the handler updated the view under the same
/// lock before the store's change could reach here, so comparing view and truth finds nothing to do.
final class ChangeFollower: Sendable {
    private let core: MountCore
    /// Keeps a replay helper running; only this thread uses the helper it hands out.
    let supervisor: HelperSupervisor
    private let inbox: ChangeInbox
    private let finished = DispatchSemaphore(value: 0)
    /// Bounds the replay of one key; a well-formed view converges in a handful of steps.
    private let maxStepsPerKey = 100_000
    /// Times the thread was woken by a signal rather than its timeout, for tests of who wakes it.
    let signalledWakeUps = Atomic<Int>(0)
    /// The thread's id once it runs (0 before), for tests that count its sleeps.
    let threadID = Atomic<Int32>(0)

    init(core: MountCore, supervisor: HelperSupervisor, inbox: ChangeInbox) {
        self.core = core
        self.supervisor = supervisor
        self.inbox = inbox
    }

    /// Starts the thread, which starts the replay helper first (it must be this thread's child:
    /// `HelperSupervisor`), and returns the mount's device number once the helper answers. If it
    /// cannot start, the thread ends and the error is thrown.
    func start() throws -> UInt64 {
        let first = Mutex<Result<UInt64, any Error>?>(nil)
        let started = DispatchSemaphore(value: 0)
        startNamedThread("kvg-follower") { [self] in
            let result = Result { try supervisor.startFirst() }
            first.withLock { $0 = result }
            started.signal()
            if case .success = result { run() }
            supervisor.stop()
            finished.signal()
        }
        started.wait()
        return try first.withLock { $0! }.get()
    }

    /// Stops the thread after its current step, and the helper with it; returns once both have
    /// ended. A step waiting on the helper ends at once (a helper that stopped answering would
    /// otherwise hold it for up to `ReplayHelper.Child.answerTimeoutMs`).
    func stop() {
        inbox.stop()
        supervisor.interrupt()
        finished.wait()
    }

    private func run() {
        threadID.store(cfuse_gettid(), ordering: .relaxed)
        while true {
            let deadline = [core.state.withLock { $0.nextHiddenDeadlineMs }, supervisor.nextAttemptMs].compactMap { $0 }.min()
            let now = nowMs()
            let waitMs = deadline.map { $0 > now ? $0 - now : 0 } ?? 1000
            if core.followerWake.wait(timeout: .now() + .milliseconds(Int(min(waitMs, 1000)))) == .success {
                signalledWakeUps.add(1, ordering: .relaxed)
            }
            let (changes, stopping) = inbox.take()
            if stopping { return }
            let (helper, recovered) = supervisor.helperForStep(nowMs: nowMs()) { settleUnanswered($0) }
            settleUnanswered(helper)
            let work = core.state.withLock { st in
                st.pendingReconciles.formUnion(recovered)
                return Work(taking: changes, from: &st)
            }
            for (parent, name) in work.entryInvalidations {
                core.invalidateEntry(parent: parent, name: name)
            }
            for path in work.paths.sorted() {
                guard let helper, !helper.isGone else {
                    supervisor.lose([path])
                    continue
                }
                replay(path, known: work.records[path], helper)
                if helper.isGone { supervisor.lose([path]) }
            }
            // A helper lost in this step is replaced at once, not at the next change.
            if helper?.isGone == true { core.followerWake.signal() }
            for ino in work.attributeInvalidations {
                core.invalidateInode(ino, attributesOnly: true)
            }
            for ino in work.pageInvalidations {
                core.invalidateInode(ino)
            }
        }
    }

    /// What one wake-up has to do, gathered under the lock.
    private struct Work {
        var paths: Set<String> = []
        var entryInvalidations: [(UInt64, String)] = []
        var attributeInvalidations: [UInt64] = []
        var pageInvalidations: [UInt64] = []
        /// The newest record these changes brought per path, which a delivery can write without
        /// reading it back from the store.
        var records: [String: Record] = [:]

        init(taking changes: [StoreChange], from st: inout FSState) {
            var revoked = false
            for change in changes {
                switch change {
                case .record(let record, _, _):
                    st.truth.apply(record)
                    paths.insert(record.key.path)
                    if records[record.key.path].map({ $0.version < record.version }) ?? true { records[record.key.path] = record }
                case .unset(let key, let previous):
                    st.truth.unset(key, previous: previous)
                    paths.insert(key.path)
                case .revocation:
                    revoked = true
                }
            }
            paths.formUnion(st.pendingReconciles)
            st.pendingReconciles = []
            st.expireHidden(nowMs: nowMs())
            entryInvalidations = st.pendingEntryInvalidations.map { ($0.parent, $0.name) }
            st.pendingEntryInvalidations = []
            attributeInvalidations = st.pendingAttributeInvalidations
            st.pendingAttributeInvalidations = []
            pageInvalidations = st.pendingPageInvalidations
            st.pendingPageInvalidations = []
            // A revocation can change which keys this node may write, so every file's mode.
            if revoked { attributeInvalidations += st.view.entries.keys.compactMap { st.inodes.existing($0) } }
        }
    }

    /// Brings the view at `path` in line with the store, one request at a time.
    private func replay(_ path: String, known: Record?, _ helper: ReplayHelper.Child) {
        var previous: SelfOp?
        for _ in 0..<maxStepsPerKey {
            guard let op = core.state.withLock({ $0.nextReplayStep(for: path) }) else { return }
            if op == previous {
                core.ctx.logger.warning("mount replay made no progress", metadata: ["path": "\(path)", "op": "\(op)"])
                return
            }
            previous = op
            guard perform(op, replaying: path, known: known, helper) else { return }
        }
    }

    private func perform(_ op: SelfOp, replaying replayed: String, known: Record?, _ helper: ReplayHelper.Child) -> Bool {
        let result: Int32
        switch op {
        case .mkdir(let path):
            result = performNow(.mkdir, path: path, helper)
        case .rmdir(let path):
            result = performNow(.rmdir, path: path, helper)
        case .unlink(let path):
            result = performNow(.unlink, path: path, helper)
        case .create(let path):
            return deliver(path, creating: true, known: known, helper)
        case .write(let path):
            return deliver(path, creating: false, known: known, answerLater: path == replayed, helper)
        }
        if result != 0 {
            core.ctx.logger.debug("mount replay step failed", metadata: ["op": "\(op)", "errno": "\(result)"])
            return false
        }
        return true
    }

    /// Has the helper replay the stored value through the mount. The handlers show exactly the
    /// version written here (`deliveries`), and the truth learns it too, so a newer record read early
    /// is not written twice.
    ///
    /// `known`, the record this wake-up's changes brought, is written as it is while the truth
    /// knows nothing newer for the path; otherwise the store is asked. Should the store already
    /// hold a newer record whose change has not been taken yet, that one follows at the next
    /// wake-up: the file shows each version in order, as a local writer's saves would.
    ///
    /// `answerLater`: the rewrite of the path being replayed, its last step, whose answer is read at
    /// the next wake-up (below); a step for another path (a child met while a directory is walked)
    /// is waited for, so the walk goes on with the view it left.
    private func deliver(_ path: String, creating: Bool, known: Record?, answerLater: Bool = false, _ helper: ReplayHelper.Child) -> Bool {
        let record: Record
        if let known, known.kind == .value, core.state.withLock({ st -> Bool in
            guard let entry = st.truth.entry(path, at: known.version), entry.live else { return false }
            st.deliveries[path] = entry
            return true
        }) {
            record = known
        } else {
            guard let key = try? Key(path), let stored = try? core.ctx.node.store.record(key), stored.kind == .value else { return false }
            core.state.withLock { st in
                st.truth.apply(stored)
                st.deliveries[path] = st.truth.entry(path, at: stored.version) ?? TruthEntry(stored)
            }
            record = stored
        }
        // A rewrite carries no bytes: its `open(O_TRUNC)` raises IN_MODIFY and its close
        // IN_CLOSE_WRITE, and what a reader then gets is the version shown above, whatever the
        // handle holds. Writing the value too cost a WRITE round trip per change (Docs/filesystem.md
        // §Changes made elsewhere). A new file is written: a creating open raises no IN_MODIFY. So
        // is every value with --mount-page-cache, whose readers read up to the size the kernel
        // holds, which the truncation set to 0 until the attributes are fetched again.
        let written = creating || core.ctx.readerPageCache
        if !written && answerLater {
            // The rewrite's answer is read at the next wake-up (`settleUnanswered`), not waited for
            // here: waiting put the follower to sleep and woke it once more per change, while the
            // answer changes nothing when the rewrite worked, and a rewrite is the last step for its
            // path. The path is looked at again once the answer is in. At most `maxUnanswered`
            // wait: the helper blocks sending answers nobody reads once the channel's buffer is
            // full (about 280 here), and then stops reading, and the follower's next send blocks.
            if helper.owed.count >= Self.maxUnanswered { settleBeforeNextStep(helper) }
            if !helper.sendOwing(.write, path: path) { deliveryFailed(path, errno: EPIPE) }
            return false
        }
        let result = performNow(creating ? .create : .write, path: path, data: written ? record.value : [], helper)
        // Where bytes were written (a create, or any value with --mount-page-cache) or the step
        // failed, drop the kernel's pages and attributes, so no reader combines them with another
        // version. A rewrite in the default mode needs nothing more: its truncating open already
        // dropped the pages and marked the size and times stale (the next stat asks the mount),
        // and the mode and owner it keeps are still right. Invalidating those too made the next
        // open of the file, the reader's or the next replay's, ask for attributes first: one
        // GETATTR round trip per change on every receiver (Docs/filesystem.md §Changes made elsewhere).
        if result != 0 {
            deliveryFailed(path, errno: result)
        } else if written, let ino = core.state.withLock({ $0.inodes.existing(path) }) {
            core.invalidateInode(ino)
        }
        return result == 0
    }

    /// Runs one step in the helper and waits for its answer, once the answers still owed are read
    /// (they come in order). Rewrites answered here are looked at again at the next wake-up, which
    /// then comes at once.
    private func performNow(_ operation: ReplayHelper.Operation, path: String, data: [UInt8] = [], _ helper: ReplayHelper.Child) -> Int32 {
        settleBeforeNextStep(helper)
        return helper.perform(operation, path: path, data: data)
    }

    /// Rewrites whose answers may wait at once, far below what the helper's channel holds.
    static let maxUnanswered = 32

    /// `settleUnanswered` in the middle of a wake-up: the paths it queues for another look are
    /// taken at the next wake-up, which then comes at once.
    private func settleBeforeNextStep(_ helper: ReplayHelper.Child) {
        if !settleUnanswered(helper) { core.followerWake.signal() }
    }

    /// Reads the answers to the rewrites sent so far (the helper has usually long finished them)
    /// and has the paths of those that worked looked at again, as the replay would have gone on
    /// after them; a failed one is treated as `deliver` treats a failed write (and, as before, not
    /// tried again until something changes). Returns whether nothing was queued for another look.
    /// The answers are owed by the helper the rewrites went to (`ReplayHelper.Child.owed`), never
    /// by one that replaced it. With a helper that is gone they fail at once, and the paths are
    /// looked at again once a helper runs.
    @discardableResult
    private func settleUnanswered(_ helper: ReplayHelper.Child?) -> Bool {
        guard let helper else { return true }
        let answers = helper.takeAnswers()
        var done: [String] = []
        for (path, result) in answers {
            if result == 0 { done.append(path) } else { deliveryFailed(path, errno: result) }
        }
        if helper.isGone { supervisor.lose(answers.map(\.path)) }
        guard !done.isEmpty else { return true }
        core.state.withLock { $0.pendingReconciles.formUnion(done) }
        return false
    }

    /// A delivery that did not happen: the handlers must not show its version, and the kernel's
    /// pages and attributes for the file go, so no reader combines them with another version.
    private func deliveryFailed(_ path: String, errno: Int32) {
        core.state.withLock { _ = $0.deliveries.removeValue(forKey: path) }
        core.ctx.logger.debug("mount replay write failed", metadata: ["path": "\(path)", "errno": "\(errno)"])
        if let ino = core.state.withLock({ $0.inodes.existing(path) }) {
            core.invalidateInode(ino)
        }
    }
}
