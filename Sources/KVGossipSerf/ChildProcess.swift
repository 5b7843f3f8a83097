import Foundation
import KVGossipProcess
import Synchronization

/// A child started with `posix_spawn`, signalled and reaped by its PID only.
final class ChildProcess: Sendable {
    let pid: pid_t
    /// The log file's size when this child started: what it wrote begins there.
    let logOffset: Int
    /// The wait status once reaped. Checked under the same lock as `signal`, so a signal can never
    /// reach a PID the kernel has already handed to another process.
    private let reaped = Mutex<WaitStatus?>(nil)
    /// Those waiting for the child's end, and whether the thread that watches for it runs.
    private let exitWatch = Mutex(ExitWatch())

    private struct ExitWatch {
        var watching = false
        var ended = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private init(pid: pid_t, logOffset: Int) {
        self.pid = pid
        self.logOffset = logOffset
    }

    /// Starts `executable` with stdin from /dev/null and stdout+stderr appended to `logPath`, in a
    /// process group of its own (a terminal's Ctrl-C must not reach it before we decide how it
    /// leaves), with default signal handling (an ignored SIGINT would be inherited and would defeat
    /// the graceful leave) and none of our other descriptors (`Spawn`: an orphaned serf holding our
    /// listening socket would block the next start).
    static func spawn(executable: String, arguments: [String], logPath: String) throws(SerfError) -> ChildProcess {
        var info = stat()
        let logOffset = stat(logPath, &info) == 0 ? Int(info.st_size) : 0
        let spawn = Spawn(
            descriptors: [
                .open(0, path: "/dev/null", flags: O_RDONLY),
                .open(1, path: logPath, flags: O_WRONLY | O_CREAT | O_APPEND, mode: 0o640),
                .copy(1, to: 2),
            ],
            ownProcessGroup: true)
        do {
            return ChildProcess(pid: try spawn.start(executable, arguments: [executable] + arguments), logOffset: logOffset)
        } catch {
            throw .process("\(error)")
        }
    }

    /// Calls of `poll` (for tests: waiting must not poll).
    var polls: Int { pollCount.load(ordering: .relaxed) }
    private let pollCount = Atomic<Int>(0)

    /// The exit status if the child has ended (reaping it), nil while it runs.
    func poll() -> WaitStatus? {
        pollCount.add(1, ordering: .relaxed)
        return reaped.withLock { status in
            if status == nil { status = WaitStatus.ifEnded(pid) }
            return status
        }
    }

    var isRunning: Bool { poll() == nil }

    /// Returns once the child has ended, reaping it.
    ///
    /// Waits without polling: a thread of its own blocks in `waitid` until the child has ended
    /// (`WNOWAIT`: it leaves the child to be reaped by `poll`, under the lock `signal` checks).
    /// Polling on a timer used to wake an idle agent 20 times a second for as long as Serf ran.
    func waitForExit() async -> WaitStatus {
        if let status = poll() { return status }
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let start = exitWatch.withLock { watch -> Bool? in
                if watch.ended { return nil }
                watch.waiters.append(waiter)
                defer { watch.watching = true }
                return !watch.watching
            }
            switch start {
            case nil: waiter.resume()
            case true?: watchForExit()
            case false?: break
            }
        }
        // The child has ended (or was reaped elsewhere), so this answers at once; the loop only
        // guards against a wait that returned for another reason.
        while true {
            if let status = poll() { return status }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Starts the thread that waits for the child's end and then resumes every waiter.
    ///
    /// Only `poll` reaps the child, and the thread does not wait for one it already reaped; one
    /// reaped between that check and the wait makes `waitid` fail with ECHILD, which ends the wait
    /// too (its PID could name another child of this process only after the PIDs wrapped around).
    private func watchForExit() {
        Thread.detachNewThread { [self] in
            Thread.current.name = "kvg-child-exit"
            if reaped.withLock({ $0 == nil }) {
                var info = siginfo_t()
                while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0, errno == EINTR {}
            }
            let waiters = exitWatch.withLock { watch -> [CheckedContinuation<Void, Never>] in
                watch.ended = true
                defer { watch.waiters = [] }
                return watch.waiters
            }
            for waiter in waiters { waiter.resume() }
        }
    }

    /// Sends `sig` if the child has not been reaped yet.
    func signal(_ sig: Int32) {
        reaped.withLock { status in
            if status == nil { _ = kill(pid, sig) }
        }
    }
}
