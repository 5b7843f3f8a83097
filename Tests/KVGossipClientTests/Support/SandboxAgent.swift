import Foundation
import KVGossipTestSupport

/// A real `kvgossip agent` process of a sandbox, stopped by its PID — at the latest when the last
/// reference to it goes.
final class SandboxAgent: @unchecked Sendable {
    let name: String
    let port: Int
    let socket: String
    let logPath: String
    let arguments: [String]
    private let process = Process()
    private let directory: URL

    init(directory: URL, name: String, arguments: [String], port: Int, socket: String) throws {
        self.directory = directory
        self.name = name
        self.port = port
        self.socket = socket
        self.arguments = arguments
        logPath = directory.appendingPathComponent("\(name)-\(UUID().uuidString.prefix(8)).log").path
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: Sandbox.kvgossip)
        process.arguments = arguments
        process.currentDirectoryURL = directory
        var env = ProcessInfo.processInfo.environment
        env["SWIFT_BACKTRACE"] = "enable=no"
        process.environment = env
        let log = FileHandle(forWritingAtPath: logPath)!
        process.standardOutput = log
        process.standardError = log
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    var isRunning: Bool { process.isRunning }

    /// Waits until the agent answers `status` on its control socket (or exits).
    func waitUntilServing() async throws {
        var exited = false
        let socket = self.socket
        let answered = await Readiness.waitAsync(timeout: .seconds(60)) {
            exited = !process.isRunning
            return exited || Readiness.controlAnswers(at: socket, pid: pid)
        }
        if exited { throw SandboxError("agent \(name) exited early:\n\(log)") }
        if !answered { throw SandboxError("agent \(name) did not answer on its control socket within 60 s:\n\(log)") }
    }

    /// `kvgossip ARGS --control <this agent's socket>`.
    @discardableResult
    func cli(_ args: [String]) async throws -> Sandbox.Run {
        try await Sandbox.run(args + ["--control", socket], in: directory)
    }

    /// Sends `signal` and waits for the process to end (SIGKILL after 10 s).
    func stop(_ signal: Int32 = SIGTERM) async {
        guard process.isRunning else { return }
        Foundation.kill(pid, signal)
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning, Date() < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning { kill() }
    }

    /// Pauses or resumes the process (SIGSTOP / SIGCONT).
    func pause() { Foundation.kill(pid, SIGSTOP) }
    func resume() { Foundation.kill(pid, SIGCONT) }

    deinit { kill() }

    /// Synchronous SIGKILL by PID, for clean-up paths that cannot wait asynchronously.
    func kill() {
        guard process.isRunning else { return }
        Foundation.kill(pid, SIGCONT)
        Foundation.kill(pid, SIGKILL)
        process.waitUntilExit()
    }
}
