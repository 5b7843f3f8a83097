import Foundation
import Synchronization

/// An operator's command line (`--exec`, a template's `check`) run with `/bin/sh -c`, waited for
/// without polling, and stopped with its whole process group when it outlives its time.
///
/// Nothing from the tree reaches the command line: what a command may need (the staged file, the
/// changed destinations) comes in environment variables, so a value can never be run as shell text.
struct ShellCommand {
    let line: String
    let environment: [String: String]
    let timeout: Duration

    struct Outcome: CustomStringConvertible {
        /// The exit code, or nil when a signal ended it.
        let exitCode: Int32?
        let timedOut: Bool
        /// The end of what it printed (stdout and stderr together), at most `outputLimit` bytes.
        let output: String

        var succeeded: Bool { exitCode == 0 && !timedOut }

        var description: String {
            let how = timedOut ? "stopped after its timeout" : exitCode.map { "exit code \($0)" } ?? "ended by a signal"
            let said = output.trimmingCharacters(in: .whitespacesAndNewlines)
            return said.isEmpty ? how : "\(how): \(said)"
        }
    }

    /// The most output kept: the end of it, where the reason for a failure usually is.
    static let outputLimit = 16 << 10

    func run() async throws -> Outcome {
        // Output goes to an unlinked file rather than a pipe: a command that leaves a daemon behind
        // holding the descriptor must not keep us waiting for an end of file that never comes.
        var template = Array("/tmp/kvgossip-command-XXXXXX".utf8CString)
        let log = mkstemp(&template)
        guard log >= 0 else { throw CLIError("cannot create a file for a command's output: \(String(cString: strerror(errno)))") }
        _ = fcntl(log, F_SETFD, FD_CLOEXEC)
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        defer { close(log) }
        let pid = try spawn(output: log)
        let timedOut = Atomic<Bool>(false)
        let limit = timeout
        let watchdog = Task {
            try await Task.sleep(for: limit)
            timedOut.store(true, ordering: .relaxed)
            kill(-pid, SIGTERM)
            try await Task.sleep(for: .seconds(2))
            kill(-pid, SIGKILL)
        }
        let status = await Self.exit(of: pid)
        watchdog.cancel()
        // WIFEXITED: the low 7 bits are 0 when the process exited by itself.
        let exitCode: Int32? = status & 0x7f == 0 ? (status >> 8) & 0xff : nil
        return Outcome(exitCode: exitCode, timedOut: timedOut.load(ordering: .relaxed), output: Self.tail(log))
    }

    /// Starts `/bin/sh -c line` as the leader of a new process group, with default handling of the
    /// signals this process ignores (SIGPIPE, SIGQUIT) or catches: an ignored disposition would pass
    /// to the command and to everything it starts (Foundation's Process keeps them).
    private func spawn(output: Int32) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, output, 1)
        posix_spawn_file_actions_adddup2(&actions, output, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        let environment = ProcessInfo.processInfo.environment.merging(self.environment) { $1 }.map { "\($0)=\($1)" }
        let words: [String] = ["sh", "-c", line]
        let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer { for pointer in argv + envp { free(pointer) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, "/bin/sh", &actions, &attributes, argv, envp)
        guard rc == 0 else { throw CLIError("cannot start /bin/sh: \(String(cString: strerror(rc)))") }
        return pid
    }

    /// The raw wait status of `pid`, waited for on a thread of its own (a blocking waitpid, no polling).
    private static func exit(of pid: pid_t) async -> Int32 {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                var status: Int32 = 0
                while waitpid(pid, &status, 0) < 0, errno == EINTR {}
                continuation.resume(returning: status)
            }
        }
    }

    /// The last `outputLimit` bytes written to `fd`.
    private static func tail(_ fd: Int32) -> String {
        let size = lseek(fd, 0, SEEK_END)
        let start = max(0, size - off_t(outputLimit))
        var bytes = [UInt8](repeating: 0, count: Int(size - start))
        let n = bytes.isEmpty ? 0 : pread(fd, &bytes, bytes.count, start)
        return String(decoding: bytes.prefix(max(0, n)), as: UTF8.self)
    }
}
