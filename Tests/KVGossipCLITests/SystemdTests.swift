import Foundation
import KVGossipTestTraits
import Testing
import KVGossipTestSupport

/// The systemd unit and the agent's side of it: a unit that verifies, and READY=1 only once the
/// agent answers.
@Suite(.integration) struct SystemdTests {
    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    @Test func unitPassesSystemdAnalyzeVerify() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        // The unit names the installed binary; verify a copy pointing at the one just built.
        let unit = try String(contentsOf: Self.packageRoot.appendingPathComponent("systemd/kvgossip.service"), encoding: .utf8)
            .replacingOccurrences(of: "/usr/local/bin/kvgossip", with: CLIProcess.binary)
        try unit.write(toFile: cli.path("kvgossip.service"), atomically: true, encoding: .utf8)
        let (status, output) = try Self.analyzeVerify(cli.path("kvgossip.service"))
        #expect(status == 0, "systemd-analyze verify: \(output)")
    }

    /// `systemd-analyze verify UNIT`: its exit status and what it printed.
    static func analyzeVerify(_ unit: String) throws -> (status: Int32, output: String) {
        try ProgramRun.combined("/usr/bin/systemd-analyze", ["verify", unit])
    }

    @Test func readyIsSentOnlyOnceTheAgentAnswersAndStoppingOnShutdown() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let notify = try FakeNotifySocket(path: cli.path("notify.sock"))
        let notifyPath = notify.path

        let config = """
            {"root": "\(root)", "data": "\(cli.path("data"))", "key": "\(cli.path("root.key"))",
             "control": "\(cli.path("control.sock"))", "listen": "127.0.0.1:\(LoopbackPort.free())", "serfSpawn": false,
             "mount": "\(cli.path("kv"))"}
            """
        try config.write(toFile: cli.path("agent.json"), atomically: true, encoding: .utf8)
        let agent = try AgentProcess(
            cli: cli, name: "unit", data: cli.path("data"), socket: cli.path("control.sock"),
            arguments: ["agent", "--config", cli.path("agent.json")], environment: ["NOTIFY_SOCKET": notifyPath], waitForSocket: false)

        let ready = notify.receive()
        #expect(ready?.contains("READY=1") == true, "got \(ready ?? "nothing"); log: \(agent.log)")
        // At the moment READY=1 arrives, the control socket and the mount already answer.
        #expect(try agent.run(["status"]).status == 0)
        #expect(try agent.run(["set", "/ready", "yes"]).status == 0)
        #expect(Readiness.wait { (try? String(contentsOfFile: cli.path("kv/ready"), encoding: .utf8)) == "yes" })
        kill(agent.pid, SIGTERM)
        var stopping = false
        while let message = notify.receive() {
            if message.contains("STOPPING=1") {
                stopping = true
                break
            }
        }
        #expect(stopping)
        #expect(agent.stop() == 0)
        #expect(!Unmounted.isMounted(cli.path("kv")))
    }

    /// An agent started on a data directory a newer release wrote exits 78, the status the unit
    /// does not restart on, and says why; `--check-config` reports the same.
    @Test func aDataDirectoryANewerReleaseWroteIsRefusedWithStatus78() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let first = try AgentProcess(cli: cli, name: "a", root: root)
        #expect(first.stop() == 0)
        let sqlite = Process()
        sqlite.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        sqlite.arguments = [first.data + "/kvgossip.sqlite", "INSERT INTO grdb_migrations (identifier) VALUES ('from-a-newer-release')"]
        try sqlite.run()
        sqlite.waitUntilExit()
        #expect(sqlite.terminationStatus == 0)

        let again = try AgentProcess(
            cli: cli, name: "a", data: first.data, socket: first.socket,
            arguments: ["agent", "--data", first.data, "--root", root, "--control", first.socket, "--no-serf", "--listen", "127.0.0.1:\(LoopbackPort.free())"],
            waitForSocket: false)
        #expect(Readiness.wait(timeout: 30) { !again.process.isRunning })
        #expect(again.stop() == 78, "log: \(again.log)")
        #expect(again.log.contains("newer kvgossip") && again.log.contains("from-a-newer-release"), "log: \(again.log)")
        let check = try cli.run(["agent", "--data", first.data, "--root", root, "--check-config"])
        #expect(check.status != 0 && check.stderr.contains("from-a-newer-release"), "\(check)")
    }

    /// `readiness: synced`: READY=1 waits for the first completed reconciliation. With its only
    /// peer down the agent answers but is not ready; once the peer is up and a session completed,
    /// it is.
    @Test func readinessSyncedWaitsForTheFirstReconciliation() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let node = try cli.keygen("b.key")
        #expect(try cli.run(["grant", "--issuer-key", "root.key", "--to", node, "--member", "--out", "b.grant"]).status == 0)
        // B learns its grant in a first run, so that A admits it later.
        let first = try AgentProcess(cli: cli, name: "b", root: root, extraArgs: ["--key", cli.path("b.key")])
        #expect(try first.run(["grants", "add", "b.grant"]).status == 0)
        #expect(first.stop() == 0)

        let peerPort = LoopbackPort.free()
        let notify = try FakeNotifySocket(path: cli.path("notify.sock"))
        let b = try AgentProcess(
            cli: cli, name: "b", root: root, extraArgs: ["--key", cli.path("b.key"), "--readiness", "synced", "--peer", "127.0.0.1:\(peerPort)"],
            environment: ["NOTIFY_SOCKET": notify.path])
        // B answers and has tried its peer, and failed: not ready.
        #expect(try b.run(["status"]).status == 0)
        let refused = try b.run(["sync", "--peer", "127.0.0.1:\(peerPort)"])
        #expect(refused.status != 0 && (refused.stdout + refused.stderr).contains("refused"), "\(refused)")
        #expect(notify.receiveNow() == nil, "READY before any reconciliation; log: \(b.log)")

        let a = try AgentProcess(cli: cli, name: "a", root: root, extraArgs: ["--key", cli.path("root.key"), "--listen", "127.0.0.1:\(peerPort)"])
        defer { _ = a.stop() }
        // Now rather than at the next round (30 s).
        let synced = try b.run(["sync", "--peer", "127.0.0.1:\(peerPort)"])
        #expect(synced.status == 0, "\(synced.stderr)")
        var ready = false
        while let message = notify.receive() {
            if message.contains("READY=1") {
                ready = true
                break
            }
        }
        #expect(ready, "no READY=1 after the peer came up; log: \(b.log)")
        #expect(try b.run(["status"]).out.contains("127.0.0.1"))
        #expect(b.stop() == 0)
    }
}

/// A fake systemd: the datagram socket an agent's sd_notify writes to ($NOTIFY_SOCKET).
final class FakeNotifySocket {
    let path: String
    private let fd: Int32

    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() { raw[i] = b }
        }
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard fd >= 0, bound == 0 else { throw CLIError("cannot bind \(path): errno \(errno)") }
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// The next message, waiting up to 20 s; nil if none came.
    func receive() -> String? { receive(flags: 0) }

    /// A message already sent, without waiting.
    func receiveNow() -> String? { receive(flags: Int32(MSG_DONTWAIT)) }

    private func receive(flags: Int32) -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, flags)
        return n > 0 ? String(decoding: buffer.prefix(n), as: UTF8.self) : nil
    }
}

enum Unmounted {
    static func isMounted(_ path: String) -> Bool {
        (ProcFile.read("/proc/self/mountinfo") ?? "").contains(" \(path) ")
    }
}
