import CFuse3
import Foundation
import Glibc
import KVGossipProcess
import KVGossipStore
import Synchronization

/// The one process that touches the mount on the agent's behalf.
///
/// Changes stored elsewhere are replayed as real file operations so the kernel raises inotify
/// events (Docs/filesystem.md §Kernel behaviour the mount relies on). Those operations are FUSE
/// requests that this process must answer. Made by a thread of the agent itself, they could
/// deadlock the agent with its own mount: once a worker has read such a request, the waiting
/// thread sleeps uninterruptibly until the answer, and a SIGKILL then leaves a process that can
/// neither finish dying (that thread never wakes) nor answer (its workers are gone), holding the
/// mount hung until someone aborts the connection by hand. Made by a separate process, the same
/// wait ends when the agent dies: its last /dev/fuse descriptor closes, the kernel aborts the
/// connection, and the helper's call fails with ENOTCONN.
///
/// So the agent spawns this helper (its own binary with `mount-helper`), and the helper does every
/// operation relative to a descriptor of the mount's root, never following a symlink: should the
/// mount go away, its calls fail instead of writing into whatever lies under the mountpoint.
public enum ReplayHelper {
    /// One replay step, as the agent sends it.
    enum Operation: UInt8 {
        case mkdir = 1, rmdir = 2, unlink = 3, create = 4, write = 5
    }

    // MARK: The helper's side

    /// Serves the agent on descriptor `channel` until it closes or the agent dies; returns the exit
    /// status. Answers "ready" first, with the mount's device number, once the root is this
    /// agent's FUSE root (inode 1 on a FUSE filesystem).
    public static func serve(channel: Int32, mountpoint: String) -> Int32 {
        // Die with the agent, and not outlive it if it died before the line above ran.
        _ = cfuse_set_parent_death_signal(SIGKILL)
        let root = Glibc.open(mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        var st = stat(), fs = statfs()
        guard root >= 0, fstat(root, &st) == 0, st.st_ino == 1, fstatfs(root, &fs) == 0, fs.f_type == CFUSE_SUPER_MAGIC else {
            let code = errno == 0 ? EINVAL : errno
            _ = Wire.send(channel, Wire.reply(code, dev: 0))
            return 1
        }
        // The thread that will make every call: FUSE names the caller by thread id, and this code
        // may not run on the process's main thread.
        guard Wire.send(channel, Wire.reply(0, dev: UInt64(st.st_dev)) + Wire.reply(cfuse_gettid(), dev: 0)) else { return 1 }
        var reader = Wire.Reader(fd: channel)
        while let (operation, path, data) = reader.nextRequest() {
            let code = perform(operation, path: path, data: data, root: root)
            guard Wire.send(channel, Wire.reply(code, dev: 0)) else { break }
        }
        close(root)
        return 0
    }

    /// Runs one step below `root`; 0 or an errno.
    static func perform(_ operation: Operation, path: String, data: [UInt8], root: Int32) -> Int32 {
        // Keys and directories are relative to the root; the view has no symlinks, and O_NOFOLLOW /
        // AT_SYMLINK_NOFOLLOW-free calls below refuse one in the last component anyway.
        let relative = String(path.drop { $0 == "/" })
        guard !relative.isEmpty, !relative.split(separator: "/").contains("..") else { return EINVAL }
        switch operation {
        case .mkdir:
            return mkdirat(root, relative, 0o755) == 0 ? 0 : errno
        case .rmdir:
            return unlinkat(root, relative, AT_REMOVEDIR) == 0 ? 0 : errno
        case .unlink:
            return unlinkat(root, relative, 0) == 0 ? 0 : errno
        case .create, .write:
            let flags = O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | (operation == .create ? O_CREAT | O_EXCL : 0)
            let fd = openat(root, relative, flags, 0o644)
            guard fd >= 0 else { return errno }
            var done = 0
            var code: Int32 = 0
            while done < data.count {
                let n = data.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, data.count - done) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 {
                    code = n < 0 ? errno : EIO
                    break
                }
                done += n
            }
            if close(fd) != 0 && code == 0 { code = errno }
            return code
        }
    }

    // MARK: The agent's side

    /// A running helper and the agent's end of its channel. Calls are serialised by the caller
    /// (the change follower is the only user), but for `interrupt`.
    ///
    /// Every wait on the helper has a deadline: one that neither takes a request nor answers for
    /// `answerTimeoutMs` (stopped by SIGSTOP, or stuck) is killed and counts as gone, so it is
    /// replaced like one that died; waiting for it for ever held the follower, and with it every
    /// replay and the mount's stop.
    final class Child: @unchecked Sendable {
        let pid: pid_t
        /// The id of the helper's thread that makes the calls (what FUSE reports as the caller).
        let callerThread: pid_t
        /// The mount's device number, reported by the helper once the mount answered.
        let device: UInt64
        private let channel: Int32
        /// Whether `channel` is closed: `interrupt`, from another thread, must not shut down a
        /// descriptor number that has been closed and perhaps given to someone else.
        private let channelClosed = Mutex(false)
        private var reader: Wire.Reader
        private let answerTimeoutMs: UInt64
        /// Why the helper was given up while it still ran, for the log.
        private(set) var failure: String?

        /// Spawns `command` (an executable and its leading arguments) with `mount-helper`'s
        /// arguments, and waits until it reports the mount answering or fails. Once it runs, it
        /// must take each request and send each answer within `answerTimeoutMs`.
        init(command: [String], mountpoint: String, answerTimeoutMs: UInt64 = Child.answerTimeoutMs) throws {
            var fds: [Int32] = [0, 0]
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
                throw MountError.sessionFailed("cannot create the replay helper's channel: \(String(cString: strerror(errno)))")
            }
            let (mine, theirs) = (fds[0], fds[1])
            // Only its channel, as descriptor 3, and standard input from /dev/null (`Spawn`: it held
            // the agent's sync port and control socket for as long as it ran). A group of its own:
            // a terminal's Ctrl-C to a foreground agent must not kill it while the agent stops
            // gracefully; the parent-death signal still ends it with the agent.
            let spawn = Spawn(descriptors: [.open(0, path: "/dev/null", flags: O_RDONLY), .copy(theirs, to: 3)], ownProcessGroup: true)
            let started = Result { () throws(SpawnError) in try spawn.start(command[0], arguments: command + ["--channel", "3", mountpoint]) }
            // The agent's copy of the helper's end goes at once: a helper that dies before it is
            // ready must show as the channel's end, not as 30 s of silence.
            close(theirs)
            let pid: pid_t
            switch started {
            case .success(let spawned): pid = spawned
            case .failure(let error):
                close(mine)
                throw MountError.sessionFailed("the replay helper: \(error)")
            }
            self.pid = pid
            channel = mine
            reader = Wire.Reader(fd: mine)
            self.answerTimeoutMs = answerTimeoutMs
            // A helper whose open of the root hangs (another filesystem mounted there that does
            // not answer) must not hold the follower's thread, and the mount's stop behind it.
            let deadline = monotonicMs() + Child.readyTimeoutMs
            guard let (code, device) = reader.nextReply(until: deadline), code == 0, let (tid, _) = reader.nextReply(until: deadline) else {
                let code = reader.lastReplyCode
                if reader.timedOut { kill(pid, SIGKILL) }
                close(mine)
                Child.reap(pid)
                if reader.timedOut {
                    throw MountError.notAnswering("the replay helper did not report the mount answering (no answer within \(Child.readyTimeoutMs / 1000) s; its open of \(mountpoint) hangs)")
                }
                throw MountError.notAnswering("the mount at \(mountpoint) did not answer the replay helper (\(code.map { String(cString: strerror($0)) } ?? "it exited"))")
            }
            self.device = device
            callerThread = tid
        }

        /// How long a helper may take to report the mount answering: generous, since at the
        /// mount's start its answer is the mount's readiness on a machine that may be busy.
        static let readyTimeoutMs: UInt64 = 30_000

        /// How long a running helper may take to take a request or to answer one. Its steps are
        /// requests to this agent's own mount, which can wait behind a save being made durable on
        /// a slow disk: generous too.
        static let answerTimeoutMs: UInt64 = 30_000

        /// Whether the channel failed (the helper is gone, or broke the framing): every step
        /// then answers EPIPE, and the helper is to be replaced (`HelperSupervisor`).
        private(set) var isGone = false

        /// Runs one step in the helper; 0 or an errno (EPIPE when the helper is gone). Every step
        /// sent before it must have had its answer read (`takeAnswers`): answers come in order.
        func perform(_ operation: Operation, path: String, data: [UInt8] = []) -> Int32 {
            guard send(operation, path: path, data: data) else { return EPIPE }
            return answer()
        }

        /// Paths of the steps sent with `sendOwing` whose answers are not read yet, oldest first.
        /// They are this helper's: one that replaces it owes none of them, and asking it for them
        /// would wait for ever.
        private(set) var owed: [String] = []

        /// Sends a step whose answer is read later (`takeAnswers`); false when the helper is gone.
        func sendOwing(_ operation: Operation, path: String) -> Bool {
            guard send(operation, path: path) else { return false }
            owed.append(path)
            return true
        }

        /// The answers to the steps sent with `sendOwing`, read in order (the helper has usually
        /// long sent them), each with its path; they are owed no more.
        func takeAnswers() -> [(path: String, result: Int32)] {
            defer { owed = [] }
            return owed.map { ($0, answer()) }
        }

        /// Sends one step without waiting for its answer; false when the helper is gone.
        private func send(_ operation: Operation, path: String, data: [UInt8] = []) -> Bool {
            guard !isGone else { return false }
            let deadline = monotonicMs() + answerTimeoutMs
            guard Wire.send(channel, Wire.request(operation, path: path, data: data), until: deadline) else {
                if monotonicMs() >= deadline { giveUp("took no request for \(Duration.milliseconds(answerTimeoutMs))") }
                isGone = true
                return false
            }
            return true
        }

        /// The answer to the oldest step sent and not yet answered, waited for: 0 or an errno
        /// (EPIPE when the helper is gone). Answers a helper sent before it went are still read:
        /// its end is closed, so reading past them finds the end at once and never waits. One that
        /// was given up is not waited for again: killed, it may still hold its end open (stuck).
        private func answer() -> Int32 {
            guard failure == nil else { return EPIPE }
            guard let (code, _) = reader.nextReply(until: monotonicMs() + answerTimeoutMs) else {
                if reader.timedOut { giveUp("gave no answer for \(Duration.milliseconds(answerTimeoutMs))") }
                isGone = true
                return EPIPE
            }
            return code
        }

        /// Gives up a helper that stopped answering: it is gone, and `stop` kills it.
        private func giveUp(_ why: String) {
            failure = why
            isGone = true
        }

        /// Makes the follower's wait on the helper, if any, end at once, and every later one:
        /// the agent's end of the channel is shut down, so a receive finds the end and a send
        /// fails. Any thread may call it (the mount is being stopped).
        func interrupt() {
            channelClosed.withLock { closed in
                if !closed { shutdown(channel, Int32(SHUT_RDWR)) }
            }
        }

        /// Whether the helper has gone, asked of the channel without waiting: a helper that died
        /// closed its end, which the channel shows as a hang-up at once, answers still unread or
        /// not. Marks it gone.
        func hasGone() -> Bool {
            guard !isGone else { return true }
            var events = pollfd(fd: channel, events: Int16(POLLIN), revents: 0)
            if poll(&events, 1, 0) > 0 && events.revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 { isGone = true }
            return isGone
        }

        /// Ends the helper: its channel closes (it exits on EOF), then it is reaped. Returns how
        /// it ended, for the log.
        @discardableResult
        func stop() -> String {
            channelClosed.withLock { closed in
                if !closed { close(channel) }
                closed = true
            }
            // One given up does not answer: it is not given the moment a helper gets to exit on
            // the channel's end.
            if failure != nil { kill(pid, SIGKILL) }
            return Child.reap(pid)
        }

        /// Waits for a helper whose channel is closed to end; how it ended, in words.
        @discardableResult
        private static func reap(_ pid: pid_t) -> String {
            // How it ended, if it does within a second.
            func endedWithinASecond() -> WaitStatus? {
                for _ in 0..<200 {
                    if let status = WaitStatus.ifEnded(pid) { return status }
                    usleep(5_000)
                }
                return nil
            }
            // A helper stuck in a call on a mount whose connection was aborted returns at once;
            // one still waiting on a live mount gets SIGKILL after a moment.
            if let status = endedWithinASecond() { return "\(status)" }
            kill(pid, SIGKILL)
            if let status = endedWithinASecond() { return "\(status)" }
            // Still there: in a request its filesystem's daemon has read, which nothing but the
            // answer ends, SIGKILL included (Docs/filesystem.md §Deadlocks). It is waited for on a
            // thread of its own, so the caller (the follower, the mount's stop) goes on.
            startNamedThread("kvg-helper-reap") { _ = WaitStatus.waitFor(pid) }
            return "killed, and not ended yet (stuck in a call on a filesystem)"
        }
    }
}
