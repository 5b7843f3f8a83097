import Foundation
import Synchronization

/// Keeps the mount's replay helper running (Docs/filesystem.md §The replay helper). A helper that
/// dies (killed by hand or by the OOM killer) used to leave the mount without replays until the
/// agent restarted: files still read the newest values, but programs watching them saw no change
/// made elsewhere, and nothing said so. Now the follower notices at its next step (a send or an
/// answer fails, or once a second a poll of the channel), this reaps the old helper and starts
/// another, and the paths whose replays were lost meanwhile are looked at again. Starts that fail,
/// and helpers that die young, are followed by a pause that doubles each time (0.1 s to 10 s), so
/// a helper that cannot live is not spawned in a loop.
///
/// Every helper is started on the follower's thread, which lives as long as the mount: the helper
/// asks the kernel for SIGKILL when the thread that started it ends (`PR_SET_PDEATHSIG` follows
/// the thread, not the process), so a helper started by the thread that mounted again after a
/// loss died with that thread a moment later, and replays stopped for good.
///
/// Only the follower's thread calls `startFirst`, `helperForStep`, `lose` and `stop`, so a helper
/// is never reaped, and its channel closed, while a step is using it. The rest is read from other
/// threads.
final class HelperSupervisor: Sendable {
    private let start: @Sendable () throws -> ReplayHelper.Child
    private let restarted: @Sendable () -> Void
    private let core: MountCore
    private let state: Mutex<State>
    /// The running helper's process id, 0 while none runs (tests and the log).
    let pid: Atomic<Int32>

    fileprivate struct State {
        var helper: ReplayHelper.Child?
        /// The mount's device number, reported by the first helper; a later one must report it too.
        var device: UInt64?
        /// Since when no helper has run, while none does.
        var downSince: Date?
        /// When the running helper started, or the last attempt is to be followed by the next.
        var startedAtMs: UInt64 = 0
        var nextAttemptMs: UInt64 = 0
        var pauseMs = HelperSupervisor.firstPauseMs
        var lastProbeMs: UInt64 = 0
        var lastFailure: String?
        /// Paths whose replay a lost helper took with it, or that came while none ran.
        var lost: Set<String> = []
        /// The mount is being taken down (`interrupt`): no helper is replaced any more.
        var stopping = false
    }

    static let firstPauseMs: UInt64 = 100
    static let longestPauseMs: UInt64 = 10_000
    /// A helper that lived this long died of something other than what kills it at start: the
    /// next one starts at once, and the pause begins again from the first.
    static let steadyMs: UInt64 = 10_000
    /// How often the channel is polled for a helper that died, at most.
    static let probeEveryMs: UInt64 = 1_000

    /// `start` spawns a helper for the mount's path and waits until it answers
    /// (`ReplayHelper.Child`); `restarted` is told each time a helper runs again after one ended.
    init(core: MountCore, start: @escaping @Sendable () throws -> ReplayHelper.Child, restarted: @escaping @Sendable () -> Void) {
        self.start = start
        self.restarted = restarted
        self.core = core
        state = Mutex(State())
        pid = Atomic(0)
    }

    /// Starts the mount's first helper; its answer is the mount's readiness. Returns the mount's
    /// device number, which names its FUSE connection.
    func startFirst() throws -> UInt64 {
        let helper = try start()
        _ = adopt(helper)
        return helper.device
    }

    /// Makes `helper` the running one: its requests pass for replays, and the state starts afresh
    /// but for the mount's device (the first helper's) and the pause, which only a helper that
    /// lived long resets. Returns the paths lost while none ran.
    private func adopt(_ helper: ReplayHelper.Child) -> Set<String> {
        core.setHelper(thread: helper.callerThread)
        pid.store(helper.pid, ordering: .relaxed)
        // The clock now: a start may take up to the helper's ready timeout.
        let started = nowMs()
        return state.withLock { s in
            defer {
                s = State(
                    helper: helper, device: s.device ?? helper.device, startedAtMs: started, pauseMs: s.pauseMs,
                    lastProbeMs: s.lastProbeMs, stopping: s.stopping)
                // Started while the mount's stop interrupted the one before: `stop` ends it.
                if s.stopping { helper.interrupt() }
            }
            return s.lost
        }
    }

    /// The helper a step may use, nil while none runs. A helper found gone is reaped first, once
    /// `beforeReplacing` has settled with it (the answers it still owes are read or fail at once:
    /// a new helper owes none of them, and waiting for them from it would wait for ever). One is
    /// started when the pause after the last attempt is over; the paths to look at again once one
    /// runs come with it (`recovered`). A helper is found gone when a step's send or answer
    /// failed, or by a poll(2) of its channel that does not wait, at most once a second, so
    /// `status` tells of a dead helper before a change would have shown it.
    func helperForStep(
        nowMs now: UInt64, beforeReplacing: (ReplayHelper.Child) -> Void
    ) -> (helper: ReplayHelper.Child?, recovered: Set<String>) {
        let (current, probe, stopping) = state.withLock { s -> (ReplayHelper.Child?, Bool, Bool) in
            let probe = now >= s.lastProbeMs + Self.probeEveryMs
            if probe { s.lastProbeMs = now }
            return (s.helper, probe, s.stopping)
        }
        // An interrupted helper looks gone; at the mount's stop it is not replaced, only ended.
        if stopping { return (nil, []) }
        if let current, !(probe ? current.hasGone() : current.isGone) { return (current, []) }
        if let current {
            beforeReplacing(current)
            reap(current, nowMs: now)
        }
        guard state.withLock({ now >= $0.nextAttemptMs }) else { return (nil, []) }
        do {
            let helper = try start()
            // It must have reached this same mount, not whatever is mounted at the path by now.
            let device = state.withLock { $0.device }
            guard helper.device == device else {
                helper.stop()
                throw MountError.notAnswering("\(core.mountpoint) is no longer this mount (device \(helper.device), not \(device.map { "\($0)" } ?? "none"))")
            }
            let recovered = adopt(helper)
            restarted()
            core.ctx.logger.warning("the mount's replay helper runs again; changes made elsewhere meanwhile are replayed now", metadata: [
                "helper": "\(helper.pid)", "paths": "\(recovered.count)",
            ])
            return (helper, recovered)
        } catch {
            let failed = nowMs()
            let pause = state.withLock { s -> UInt64 in
                s.lastFailure = "\(error)"
                return s.pause(from: failed)
            }
            core.ctx.logger.error("cannot start the mount's replay helper; programs watching files see no changes made elsewhere until it runs", metadata: [
                "error": "\(error)", "next attempt in": "\(pause) ms",
            ])
            return (nil, [])
        }
    }

    /// When the follower should look again for lack of a helper, if none runs.
    var nextAttemptMs: UInt64? {
        state.withLock { $0.helper == nil ? $0.nextAttemptMs : nil }
    }

    /// Notes paths whose replay did not happen because the helper is gone or none runs.
    func lose<S: Sequence<String>>(_ paths: S) {
        state.withLock { $0.lost.formUnion(paths) }
    }

    /// What `status` should say while no helper runs, or nil.
    var problem: String? {
        state.withLock { s in
            guard s.helper == nil, let since = s.downSince else { return nil }
            return "the mount's replay helper has not run since \(ISO8601DateFormatter().string(from: since)): programs watching"
                + " files under \(core.mountpoint) see no changes made elsewhere (reads show them)"
                + (s.lastFailure.map { "; the last start failed: \($0)" } ?? "")
        }
    }

    /// Ends the follower's wait on the running helper, if it waits, and keeps any helper from
    /// being started after it (the mount is being taken down, and the follower must come to its
    /// end). Any thread may call it.
    func interrupt() {
        state.withLock { s -> ReplayHelper.Child? in
            s.stopping = true
            return s.helper
        }?.interrupt()
    }

    /// Ends the running helper, if any (the mount is being taken down).
    func stop() {
        guard let helper = state.withLock({ s -> ReplayHelper.Child? in
            defer { s.helper = nil }
            return s.helper
        }) else { return }
        pid.store(0, ordering: .relaxed)
        helper.stop()
    }

    /// Ends a helper found gone. One that died young is followed by a pause before the next.
    private func reap(_ helper: ReplayHelper.Child, nowMs now: UInt64) {
        // Whatever `beforeReplacing` left owed is looked at again, not dropped.
        lose(helper.owed)
        // Its thread id is free for another thread once it is reaped, and that thread's requests
        // must not pass for replays.
        core.setHelper(thread: 0)
        let ended = helper.stop()
        pid.store(0, ordering: .relaxed)
        let pause = state.withLock { s -> UInt64? in
            s.helper = nil
            s.downSince = s.downSince ?? Date()
            guard now < s.startedAtMs + Self.steadyMs else {
                s.pauseMs = Self.firstPauseMs
                return nil
            }
            return s.pause(from: now)
        }
        core.ctx.logger.warning("the mount's replay helper ended; starting another", metadata: [
            "helper": "\(helper.pid)", "how": "\(helper.failure.map { "\($0): " } ?? "")\(ended)", "after": pause.map { "\($0) ms" } ?? "now",
        ])
    }
}

extension HelperSupervisor.State {
    /// Sets the next attempt a pause after `now` and doubles the pause for the one after;
    /// returns this pause.
    mutating func pause(from now: UInt64) -> UInt64 {
        nextAttemptMs = now + pauseMs
        defer { pauseMs = min(pauseMs * 2, HelperSupervisor.longestPauseMs) }
        return pauseMs
    }
}
