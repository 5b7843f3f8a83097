import Foundation
import KVGossipClient
import KVGossipTestSupport

/// One test's world: a temporary directory, the `kvgossip` binary run as real processes in it,
/// and the agents it started, which are killed by PID when the sandbox goes away — also when the
/// test fails or throws half-way. Agents do not point back at their sandbox, so nothing keeps it
/// alive past the test.
final class Sandbox: @unchecked Sendable {
    struct Run: Sendable {
        let status: Int32
        let stdout: String
        let stderr: String
        var out: String { stdout.trimmingCharacters(in: .whitespacesAndNewlines) }
    }

    let directory: URL
    private let lock = NSLock()
    private var agents: [SandboxAgent] = []
    private var children: [Process] = []

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-client-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    deinit {
        for agent in agents { agent.kill() }
        for child in children where child.isRunning {
            Foundation.kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// The package's build products: `Tests/KVGossipClientTests/Support/Sandbox.swift` → root.
    static let buildDirectory: URL = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug")
    }()

    static var kvgossip: String {
        ProcessInfo.processInfo.environment["KVGOSSIP_BIN"] ?? buildDirectory.appendingPathComponent("kvgossip").path
    }

    /// Runs `kvgossip ARGS` to completion on a plain thread, so waiting for it never takes one of
    /// the few threads the client under test needs.
    @discardableResult
    func run(_ args: [String], binary: String = Sandbox.kvgossip) async throws -> Run {
        try await Self.run(args, binary: binary, in: directory)
    }

    static func run(_ args: [String], binary: String = Sandbox.kvgossip, in directory: URL) async throws -> Run {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: binary)
                p.arguments = args
                p.currentDirectoryURL = directory
                let out = Pipe(), err = Pipe()
                p.standardOutput = out
                p.standardError = err
                do { try p.run() } catch {
                    continuation.resume(throwing: error)
                    return
                }
                let o = out.fileHandleForReading.readDataToEndOfFile()
                let e = err.fileHandleForReading.readDataToEndOfFile()
                p.waitUntilExit()
                continuation.resume(returning: Run(
                    status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self)))
            }
        }
    }

    /// `kvgossip keygen --out NAME`, returning the public key.
    func keygen(_ name: String) async throws -> String {
        let r = try await run(["keygen", "--out", name])
        guard r.status == 0 else { throw SandboxError("keygen failed: \(r.stderr)") }
        return r.out
    }

    /// A new key `NAME.key` and its grant from `root.key` for `pattern`, `NAME.grant`; returns the
    /// public key.
    func grantee(_ name: String, pattern: String) async throws -> String {
        let key = try await keygen("\(name).key")
        let r = try await run(["grant", "--issuer-key", "root.key", "--to", key, "--pattern", pattern, "--out", "\(name).grant"])
        guard r.status == 0 else { throw SandboxError("grant failed: \(r.stderr)") }
        return key
    }

    /// Starts `kvgossip agent` with its own data directory, socket, log and sync port; its node
    /// key is `root.key` so the CLI can write anything through it.
    func startAgent(
        _ name: String, root: String, peers: [Int] = [], port: Int? = nil, control: String? = nil, data: String? = nil,
        extra: [String] = []
    ) async throws -> SandboxAgent {
        let port = port ?? LoopbackPort.free()
        var args = [
            "agent", "--data", path(data ?? "\(name)-data"), "--root", root, "--key", "root.key", "--name", name,
            "--control", path(control ?? "\(name).sock"), "--listen", "127.0.0.1:\(port)", "--sync-interval", "3600",
            "--log-level", "info", "--no-serf",
        ]
        for p in peers { args += ["--peer", "127.0.0.1:\(p)"] }
        let agent = try SandboxAgent(directory: directory, name: name, arguments: args + extra, port: port, socket: path(control ?? "\(name).sock"))
        lock.withLock { agents.append(agent) }
        try await agent.waitUntilServing()
        return agent
    }

    /// Starts a child process whose output is collected as it comes; killed with the sandbox.
    func spawn(_ binary: String, _ args: [String]) throws -> (Process, OutputCollector) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args
        p.currentDirectoryURL = directory
        let collector = OutputCollector()
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        pipe.fileHandleForReading.readabilityHandler = { handle in collector.append(handle.availableData) }
        try p.run()
        lock.withLock { children.append(p) }
        return (p, collector)
    }

}

/// Output of a child process, gathered from its pipe.
final class OutputCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()

    func append(_ chunk: Data) { lock.withLock { data.append(chunk) } }
    var text: String { lock.withLock { String(decoding: data, as: UTF8.self) } }
}

struct SandboxError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
