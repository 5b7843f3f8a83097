import Foundation
import KVGossipTestSupport

/// One run of a script from `Scripts/`, its combined output going to a file so a test can watch it
/// while it runs. Stopped by PID (SIGTERM, so the script's own trap tears down, then SIGKILL) if it
/// outlives its deadline or the test.
final class ScriptRun: @unchecked Sendable {
    let process = Process()
    let outputPath: String
    private var finished = false

    init(_ script: String, arguments: [String] = [], environment: [String: String] = [:]) throws {
        outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-script-\(UUID().uuidString).out").path
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        // Through env(1) with SIGINT back to its default: a shell started with SIGINT ignored (as a
        // background job is) can never trap it, and the scripts clean up on Ctrl-C through a trap.
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["--default-signal=INT", SystemdTests.packageRoot.appendingPathComponent(script).path] + arguments
        process.currentDirectoryURL = SystemdTests.packageRoot
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let out = FileHandle(forWritingAtPath: outputPath)!
        process.standardOutput = out
        process.standardError = out
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    /// Waits until `text` appears in the output; false if the script ended or time ran out first.
    func waitForOutput(_ text: String, timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if output.contains(text) { return true }
            if !process.isRunning { return output.contains(text) }
            usleep(50_000)
        }
        return false
    }

    /// Waits for the script to exit; after `timeout`, SIGTERM (its trap cleans up), then SIGKILL.
    /// Returns the exit status, or nil if it had to be stopped.
    @discardableResult
    func wait(timeout: TimeInterval) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        if !process.isRunning {
            finished = true
            return process.terminationStatus
        }
        stop()
        return nil
    }

    func stop() {
        guard !finished else { return }
        finished = true
        process.stop(signal: SIGTERM, grace: 30)
    }

    /// The value after `label` on the first output line that contains it, e.g. `temp dir:`.
    func field(_ label: String) -> String? {
        for line in output.split(separator: "\n") {
            if let range = line.range(of: label) {
                return line[range.upperBound...].trimmingCharacters(in: .whitespaces)
            }
        }
        return nil
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: outputPath)
    }
}

/// What is left on this machine of things a script made.
enum Leftovers {
    /// Every mountpoint in /proc/mounts under `directory`.
    static func mounts(under directory: String) -> [String] {
        let text = ProcFile.read("/proc/mounts") ?? ""
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count > 1 else { return nil }
            let mountpoint = String(fields[1])
            return mountpoint == directory || mountpoint.hasPrefix(directory + "/") ? mountpoint : nil
        }
    }

    /// Network namespaces whose name starts with `prefix`.
    static func namespaces(prefix: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []).filter { $0.hasPrefix(prefix) }
    }

    /// `pid: command line` of every live (non-zombie) process whose command line contains `text`.
    static func processes(mentioning text: String) -> [String] {
        let me = getpid()
        return ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
            guard let pid = Int32(entry), pid != me, isLive(pid) else { return nil }
            let line = commandLine(pid)
            return line.contains(text) ? "\(pid): \(line)" : nil
        }
    }

    static func commandLine(_ pid: Int32) -> String {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return "" }
        return String(decoding: data.map { $0 == 0 ? UInt8(ascii: " ") : $0 }, as: UTF8.self)
    }

    /// True for a process that exists and is not a zombie.
    static func isLive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.range(of: ") ", options: .backwards)
        else { return false }
        return !stat[close.upperBound...].hasPrefix("Z")
    }
}
