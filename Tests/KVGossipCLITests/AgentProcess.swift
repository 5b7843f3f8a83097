import Foundation
import KVGossipTestSupport

/// A real `kvgossip agent` started for one test, stopped by PID (SIGTERM, then SIGKILL) even when
/// the test fails.
final class AgentProcess: @unchecked Sendable {
    let cli: CLIProcess
    let data: String
    let socket: String
    let process = Process()
    let logPath: String
    private(set) var stopped = false

    /// `data`: the data directory, when it must be somewhere else than `cli`'s directory (a
    /// powercut disk).
    convenience init(
        cli: CLIProcess, name: String = "agent", root: String, data: String? = nil, extraArgs: [String] = [], environment: [String: String] = [:]
    ) throws {
        let data = data ?? cli.path("\(name)-data")
        let socket = cli.path("\(name).sock")
        try self.init(
            cli: cli, name: name, data: data, socket: socket,
            arguments: ["agent", "--data", data, "--root", root, "--control", socket, "--log-level", "debug", "--no-serf"]
                + (extraArgs.contains("--listen") ? [] : ["--listen", "127.0.0.1:\(LoopbackPort.free())"]) + extraArgs,
            environment: environment)
    }

    /// An agent started with exactly these arguments (e.g. `agent --config FILE`, as a unit would).
    init(
        cli: CLIProcess, name: String, data: String, socket: String, arguments: [String], environment: [String: String] = [:],
        waitForSocket wait: Bool = true, executable: String = CLIProcess.binary
    ) throws {
        self.cli = cli
        self.data = data
        self.socket = socket
        logPath = cli.path("\(name).log")
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = cli.directory
        var env = ProcessInfo.processInfo.environment
        env["SWIFT_BACKTRACE"] = "enable=no"
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let log = FileHandle(forWritingAtPath: logPath)!
        process.standardOutput = log
        process.standardError = log
        try process.run()
        if wait { try waitForSocket() }
    }

    var pid: Int32 { process.processIdentifier }
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Waits until the agent answers `status` on its control socket (or exits).
    func waitForSocket(timeout: TimeInterval = 60) throws {
        var exited = false
        let answered = Readiness.wait(timeout: timeout) {
            exited = !process.isRunning
            return exited || Readiness.controlAnswers(at: socket, pid: process.processIdentifier)
        }
        if exited { throw CLIError("agent exited early:\n\(log)") }
        if !answered { throw CLIError("agent did not answer on its control socket within \(Int(timeout)) s:\n\(log)") }
    }

    /// Runs `kvgossip ARGS --control <this agent's socket>`.
    @discardableResult
    func run(_ args: [String]) throws -> CLIProcess.Result {
        try cli.run(args + ["--control", socket])
    }

    /// `kvgossip status --json`, decoded (empty when it is JSON but not an object). When the command
    /// printed no JSON, the error says what it printed and how the agent's log ends.
    func status() throws -> [String: Any] {
        let result = try run(["status", "--json"])
        guard let json = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) else {
            throw CLIError("`status --json` printed no JSON (exit \(result.status)): \(result.stdout)\(result.stderr)\nthe agent's log ends:\n\(log.suffix(4000))")
        }
        return json as? [String: Any] ?? [:]
    }

    /// SIGTERM and wait; returns the exit status.
    @discardableResult
    func stop(signal: Int32 = SIGTERM) -> Int32 {
        guard !stopped else { return process.terminationStatus }
        stopped = true
        return process.stop(signal: signal, grace: 30)
    }

    deinit { stop(signal: SIGKILL) }
}

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

extension CLIProcess {
    /// `keygen --out name`, returning the public key text.
    func keygen(_ name: String) throws -> String {
        let r = try run(["keygen", "--out", name])
        guard r.status == 0 else { throw CLIError("keygen failed: \(r.stderr)") }
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

extension CLIProcess.Result {
    var out: String { stdout.trimmingCharacters(in: .whitespacesAndNewlines) }
}
