import Foundation
import Synchronization

/// How a child ended, decoded from the raw `waitpid` status.
struct ExitStatus: Sendable, Equatable, CustomStringConvertible {
    let raw: Int32

    /// The exit code, when the process exited by itself.
    var exitCode: Int32? { raw & 0x7f == 0 ? (raw >> 8) & 0xff : nil }
    /// The signal that killed it, otherwise.
    var signal: Int32? { raw & 0x7f == 0 ? nil : raw & 0x7f }

    /// Marks a child reaped by someone else, whose status is lost.
    static let unknown: Int32 = -1

    var description: String {
        if raw == Self.unknown { return "unknown status" }
        if let exitCode { return "exit code \(exitCode)" }
        return "signal \(signal ?? 0)"
    }
}

/// A child started with `posix_spawn`, signalled and reaped by its PID only.
final class ChildProcess: Sendable {
    let pid: pid_t
    /// The log file's size when this child started: what it wrote begins there.
    let logOffset: Int
    /// The wait status once reaped. Checked under the same lock as `signal`, so a signal can never
    /// reach a PID the kernel has already handed to another process.
    private let reaped = Mutex<ExitStatus?>(nil)
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

    /// Starts `executable` with stdin from /dev/null and stdout+stderr appended to `logPath`.
    /// The child gets its own process group (a terminal's Ctrl-C must not reach it before we decide
    /// how it leaves), default signal handlers (an ignored SIGINT would be inherited and would defeat
    /// the graceful leave) and none of our descriptors beyond 0–2.
    static func spawn(executable: String, arguments: [String], logPath: String) throws(SerfError) -> ChildProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o640)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        _ = closeDescriptorsFrom3?(&actions, 3)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD] { sigaddset(&defaults, sig) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        var info = stat()
        let logOffset = stat(logPath, &info) == 0 ? Int(info.st_size) : 0
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for arg in argv { free(arg) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard rc == 0 else { throw .process("cannot start \(executable): \(String(cString: strerror(rc)))") }
        return ChildProcess(pid: pid, logOffset: logOffset)
    }

    /// Calls of `poll` (for tests: waiting must not poll).
    var polls: Int { pollCount.load(ordering: .relaxed) }
    private let pollCount = Atomic<Int>(0)

    /// The exit status if the child has ended (reaping it), nil while it runs.
    func poll() -> ExitStatus? {
        pollCount.add(1, ordering: .relaxed)
        return reaped.withLock { status in
            if let status { return status }
            var raw: Int32 = 0
            let result = waitpid(pid, &raw, WNOHANG)
            if result == pid {
                status = ExitStatus(raw: raw)
            } else if result < 0, errno == ECHILD {
                status = ExitStatus(raw: ExitStatus.unknown)  // reaped by someone else
            }
            return status
        }
    }

    var isRunning: Bool { poll() == nil }

    /// Returns once the child has ended, reaping it.
    ///
    /// Waits without polling: a thread of its own blocks in `waitid` until the child has ended
    /// (`WNOWAIT`: it leaves the child to be reaped by `poll`, under the lock `signal` checks).
    /// Polling on a timer used to wake an idle agent 20 times a second for as long as Serf ran.
    func waitForExit() async -> ExitStatus {
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

/// glibc ≥ 2.34 has `posix_spawn_file_actions_addclosefrom_np`, but the Swift Glibc module does
/// not export it; look it up so children do not inherit descriptors that lack FD_CLOEXEC (an orphaned
/// serf holding our listening socket would block the next start).
private let closeDescriptorsFrom3: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32)? = {
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else {
        return nil
    }
    return unsafeBitCast(
        symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32).self)
}()
