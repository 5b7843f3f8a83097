import Foundation
import KVGossipTestSupport

/// A real `kvgossip template` run for one test, stopped by PID even when the test fails. It is
/// asked, not watched: its status file says how many snapshots, renders, installs and commands
/// it made, and the command of most tests appends a line to a file per run.
final class TemplateProcess: @unchecked Sendable {
    let statusPath: String
    /// Started, logged and stopped the way agents are.
    private let child: AgentProcess

    init(cli: CLIProcess, name: String = "template", arguments: [String]) throws {
        statusPath = cli.path("\(name)-status.json")
        child = try AgentProcess(
            cli: cli, name: name, data: cli.directory.path, socket: "",
            arguments: ["template", "--status-file", statusPath, "--log-level", "debug"] + arguments, waitForSocket: false)
    }

    var process: Process { child.process }
    var log: String { child.log }

    /// The status file's fields, or empty before the first cycle.
    var status: [String: Any] {
        guard let data = FileManager.default.contents(atPath: statusPath) else { return [:] }
        return (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    }

    func count(_ field: String) -> Int { status[field] as? Int ?? 0 }
    var lastError: String? { status["lastError"] as? String }

    /// Waits until `field` reaches at least `value`, or the process exits.
    @discardableResult
    func waitFor(_ field: String, atLeast value: Int, timeout: TimeInterval = 30) -> Bool {
        Readiness.wait(timeout: timeout) { !process.isRunning || count(field) >= value } && count(field) >= value
    }

    /// Waits until a cycle whose snapshot was asked for after `ms` (Unix ms) has ended.
    func waitForSnapshot(after ms: UInt64, timeout: TimeInterval = 30) -> Bool {
        Readiness.wait(timeout: timeout) { (status["snapshotAt"] as? Int ?? 0) > Int(ms) }
    }

    static func nowMs() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }

    @discardableResult
    func stop(signal: Int32 = SIGTERM) -> Int32 { child.stop(signal: signal) }
}

extension CLIProcess {
    func write(_ name: String, _ text: String) throws {
        try text.write(toFile: path(name), atomically: true, encoding: .utf8)
    }

    func read(_ name: String) -> String? { try? String(contentsOfFile: path(name), encoding: .utf8) }

    /// Lines in a file a command appends to (0 when it does not exist yet).
    func lines(_ name: String) -> Int { read(name)?.split(separator: "\n").count ?? 0 }
}

extension AgentProcess {
    /// Mints a value through the control socket directly: a few milliseconds, where a `kvgossip
    /// set` process takes tens, so bursts can be made in a known short time.
    func mint(_ key: String, _ value: String) throws {
        let json = #"{"id":1,"op":"mint","key":"\#(key)","value":"\#(Data(value.utf8).base64EncodedString())"}"#
        guard let reply = Readiness.controlRequest(at: socket, json: json, timeout: 10), reply.contains(#""ok":true"#) else {
            throw CLIError("mint \(key) failed")
        }
    }
}
