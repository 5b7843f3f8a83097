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
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", line]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardInput = FileHandle.nullDevice
        // Output goes to an unlinked file rather than a pipe: a command that leaves a daemon behind
        // holding the descriptor must not keep us waiting for an end of file that never comes.
        var template = Array("/tmp/kvgossip-command-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else { throw CLIError("cannot create a file for a command's output: \(String(cString: strerror(errno)))") }
        unlink(String(cString: template))
        let log = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        process.standardOutput = log
        process.standardError = log
        let ended = AsyncStream.makeStream(of: Void.self)
        process.terminationHandler = { _ in ended.continuation.finish() }
        try process.run()
        // Foundation starts the child as the leader of a process group of its own: one kill(-pid)
        // reaches everything the shell started.
        let group = process.processIdentifier
        let timedOut = Atomic<Bool>(false)
        let limit = timeout
        let watchdog = Task {
            try await Task.sleep(for: limit)
            timedOut.store(true, ordering: .relaxed)
            kill(-group, SIGTERM)
            try await Task.sleep(for: .seconds(2))
            kill(-group, SIGKILL)
        }
        for await _ in ended.stream {}
        watchdog.cancel()
        let signalled = process.terminationReason == .uncaughtSignal
        return Outcome(
            exitCode: signalled ? nil : process.terminationStatus, timedOut: timedOut.load(ordering: .relaxed),
            output: withExtendedLifetime(log) { Self.tail(fd) })
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
