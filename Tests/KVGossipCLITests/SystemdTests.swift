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
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/systemd-analyze")
        p.arguments = ["verify", unit]
        let out = Pipe()
        p.standardError = out
        p.standardOutput = out
        try p.run()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, output)
    }

    @Test func readyIsSentOnlyOnceTheAgentAnswersAndStoppingOnShutdown() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        // A fake systemd: a datagram socket the agent's sd_notify writes to.
        let notifyPath = cli.path("notify.sock")
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in notifyPath.utf8.enumerated() { raw[i] = b }
        }
        #expect(withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } } == 0)
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))

        let config = """
            {"root": "\(root)", "data": "\(cli.path("data"))", "key": "\(cli.path("root.key"))",
             "control": "\(cli.path("control.sock"))", "listen": "127.0.0.1:\(LoopbackPort.free())", "serfSpawn": false,
             "mount": "\(cli.path("kv"))"}
            """
        try config.write(toFile: cli.path("agent.json"), atomically: true, encoding: .utf8)
        let agent = try AgentProcess(
            cli: cli, name: "unit", data: cli.path("data"), socket: cli.path("control.sock"),
            arguments: ["agent", "--config", cli.path("agent.json")], environment: ["NOTIFY_SOCKET": notifyPath], waitForSocket: false)

        func receive() -> String? {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buffer, buffer.count, 0)
            return n > 0 ? String(decoding: buffer.prefix(n), as: UTF8.self) : nil
        }
        let ready = receive()
        #expect(ready?.contains("READY=1") == true, "got \(ready ?? "nothing"); log: \(agent.log)")
        // At the moment READY=1 arrives, the control socket and the mount already answer.
        #expect(try agent.run(["status"]).status == 0)
        #expect(try agent.run(["set", "/ready", "yes"]).status == 0)
        #expect((try? String(contentsOfFile: cli.path("kv/ready"), encoding: .utf8)) == "yes")
        kill(agent.pid, SIGTERM)
        var stopping = false
        while let message = receive() {
            if message.contains("STOPPING=1") {
                stopping = true
                break
            }
        }
        #expect(stopping)
        #expect(agent.stop() == 0)
        #expect(!Unmounted.isMounted(cli.path("kv")))
    }
}

enum Unmounted {
    static func isMounted(_ path: String) -> Bool {
        ((try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "").contains(" \(path) ")
    }
}
