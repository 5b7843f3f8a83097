import Foundation
import KVGossipProcess
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
        return Outcome(exitCode: status.exitCode, timedOut: timedOut.load(ordering: .relaxed), output: Self.tail(log))
    }

    /// Starts `/bin/sh -c line` as the leader of a new process group, with default handling of the
    /// signals this process ignores (SIGPIPE, SIGQUIT) or catches, and none of this process's
    /// descriptors but its output (`Spawn`): a daemon the command leaves behind held this process's
    /// connection to the agent for as long as it ran.
    private func spawn(output: Int32) throws -> pid_t {
        let environment = ProcessInfo.processInfo.environment.merging(self.environment) { $1 }.map { "\($0)=\($1)" }
        let spawn = Spawn(
            descriptors: [.open(0, path: "/dev/null", flags: O_RDONLY), .copy(output, to: 1), .copy(output, to: 2)],
            ownProcessGroup: true, environment: environment)
        do {
            return try spawn.start("/bin/sh", arguments: ["sh", "-c", line])
        } catch {
            throw CLIError("\(error)")
        }
    }

    /// How `pid` ended, waited for on a thread of its own (a blocking waitpid, no polling).
    private static func exit(of pid: pid_t) async -> WaitStatus {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: WaitStatus.waitFor(pid)) }
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
