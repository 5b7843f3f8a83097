import Foundation

/// Runs the built `kvgossip` binary as a real process, in a temporary working directory.
struct CLIProcess {
    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    static var binary: String {
        if let env = ProcessInfo.processInfo.environment["KVGOSSIP_BIN"] { return env }
        // Tests/KVGossipCLITests/CLIProcess.swift → package root.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for config in ["debug", "release"] {
            let path = root.appendingPathComponent(".build/\(config)/kvgossip").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return root.appendingPathComponent(".build/debug/kvgossip").path
    }

    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// Runs `kvgossip` with `args`; `environment` adds to (or overrides) the test's own.
    /// `standardInput`: what the command reads (the test's own when nil).
    @discardableResult
    func run(_ args: [String], environment: [String: String] = [:], standardInput: Pipe? = nil) throws -> Result {
        let p = Process()
        if let standardInput { p.standardInput = standardInput }
        p.executableURL = URL(fileURLWithPath: CLIProcess.binary)
        p.arguments = args
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        p.currentDirectoryURL = directory
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    func cleanUp() { try? FileManager.default.removeItem(at: directory) }
}
