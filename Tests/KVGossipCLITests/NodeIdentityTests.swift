import Foundation
import KVGossipTestSupport
import KVGossipTestTraits
import Testing

/// Who a node is: a default name that stays unique on cloned hosts, a clear error when two hosts
/// are given the same name anyway, and one agent per data directory.
@Suite(.serialized, .integration) struct NodeIdentityTests {
    /// Three hosts in three network namespaces share this machine's host name, as hosts cloned from
    /// one image do; none is given --name. They still form one cluster.
    @Test func hostsWithTheSameHostNameFormOneCluster() throws {
        if let missing = NetnsLab.unavailableReason ?? SerfGossipTests.serfMissing {
            Issue.record("\(missing)")
            return
        }
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let net = try NetnsLab(count: 3)
        var agents: [AgentProcess] = []
        defer { for a in agents { a.stop() } }
        for i in 0..<3 {
            let data = cli.path("h\(i)-data"), socket = cli.path("h\(i).sock")
            var args = net.enter(i) + [
                CLIProcess.binary, "agent", "--data", data, "--root", root, "--control", socket, "--key", "root.key",
                "--listen", "\(net.ip(i)):7947", "--serf-spawn", "--serf-bind", "\(net.ip(i)):7946", "--serf-rpc", "127.0.0.1:7373",
                "--serf-profile", "local", "--sync-interval", "3600",
            ]
            if i > 0 { args += ["--join", "\(net.ip(0)):7946"] }
            // Each host has a node key of its own (generated in its data directory), as a cloned
            // host does on first start.
            if let k = args.firstIndex(of: "--key") { args.removeSubrange(k...(k + 1)) }
            agents.append(try AgentProcess(cli: cli, name: "h\(i)", data: data, socket: socket, arguments: args, executable: "/usr/bin/nsenter"))
        }
        // Node 0 may write everything; the two others only read: a membership grant admits them.
        let node0 = try #require(try agents[0].status()["node"] as? String)
        #expect(try cli.run(["grant", "--issuer-key", "root.key", "--to", node0, "--pattern", "/**", "--out", "h0.grant"]).status == 0)
        #expect(try agents[0].run(["grants", "add", "h0.grant"]).status == 0)
        for i in 1..<3 {
            let key = try #require(try agents[i].status()["node"] as? String)
            #expect(try cli.run(["grant", "--issuer-key", "root.key", "--to", key, "--member", "--out", "h\(i).grant"]).status == 0)
            #expect(try agents[i].run(["grants", "add", "h\(i).grant"]).status == 0)
        }

        let names = try agents.map { try #require(try $0.status()["name"] as? String) }
        #expect(Set(names).count == 3, "names: \(names)")
        let host = ProcessInfo.processInfo.hostName
        #expect(names.allSatisfy { $0.hasPrefix(host + "-") }, "names: \(names)")
        // Every host lists the two others as peers, by those names.
        let listed = try Readiness.wait {
            try agents.allSatisfy { agent in
                let peers = (try agent.status()["peers"] as? [[String: Any]]) ?? []
                return peers.count == 2
            }
        }
        let statuses = try agents.map { try $0.run(["status"]).stdout }
        #expect(listed, "\(statuses)")

        #expect(try agents[0].run(["set", "/app/db/url", "postgres://db2"]).status == 0)
        for agent in agents[1...] {
            #expect(try Readiness.wait { try agent.run(["get", "/app/db/url"]).stdout == "postgres://db2" }, "\(agent.log.suffix(2000))")
        }
        for agent in agents { #expect(try (agent.status()["problems"] as? [String] ?? []).isEmpty) }
        // No cluster secret, and Serf gossips on an address beyond the host: `status` says so
        // (Docs/security.md §Peers and links; PartitionTests has the same with a secret, and no warning).
        for agent in agents {
            let warnings = try agent.status()["warnings"] as? [String] ?? []
            #expect(warnings.contains { $0.contains("Serf gossip is not encrypted") }, "\(warnings)")
        }
    }

    /// Two hosts given the same --name: Serf quits on both sides; the agents say why instead of
    /// restarting it in a loop.
    @Test func aNameGivenTwiceIsReportedNotRestartedInALoop() throws {
        if let missing = SerfGossipTests.serfMissing {
            Issue.record("\(missing)")
            return
        }
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let hosts = ["A", "B"].map(SerfGossipTests.Host.onFreePorts)
        let a = try SerfGossipTests.start(cli, hosts[0], root: root, join: nil, name: "twin")
        defer { a.stop() }
        let b = try SerfGossipTests.start(cli, hosts[1], root: root, join: hosts[0], name: "twin")
        defer { b.stop() }
        for agent in [a, b] {
            var problems: [String] = []
            let reported = try Readiness.wait(timeout: 60) {
                problems = try agent.status()["problems"] as? [String] ?? []
                return problems.contains { $0.contains("uses this node's name \"twin\"") }
            }
            #expect(reported, "problems: \(problems); log: \(agent.log.suffix(2000))")
            // The supervisor records the problem before it logs it.
            #expect(Readiness.wait { agent.log.contains("serf agent quit and is not restarted") })
            #expect(try agent.run(["status"]).stdout.contains("PROBLEM"))
            #expect(!agent.log.contains("serf agent restarted"))
        }
    }

    /// A second agent on a live agent's data directory refuses at once and touches nothing.
    @Test func aSecondAgentOnTheSameDataDirectoryRefuses() throws {
        guard let s = try SerfGossipTests.LoneHost("A") else { return }
        defer { s.tearDown() }
        let (cli, root, first) = (s.cli, s.root, s.agent)
        try first.run(["set", "/k", "v"])
        let serfPidFile = first.data + "/serf/serf.pid"
        let serfPid = try String(contentsOfFile: serfPidFile, encoding: .utf8)

        // Same --data; everything else its own, so only the data directory can clash.
        let socket = cli.path("second.sock")
        let second = try AgentProcess(
            cli: cli, name: "second", data: first.data, socket: socket,
            arguments: [
                "agent", "--data", first.data, "--root", root, "--control", socket, "--key", "root.key",
                "--listen", "127.0.0.1:\(LoopbackPort.free())", "--serf-spawn", "--serf-bind", "127.0.0.1:\(LoopbackPort.free())",
                "--serf-rpc", "127.0.0.1:\(LoopbackPort.free())",
            ], waitForSocket: false)
        #expect(Readiness.wait { !second.process.isRunning })
        #expect(second.process.terminationStatus != 0)
        #expect(second.log.contains("another agent is already running on the data directory"), "\(second.log)")
        #expect(second.log.contains("pid \(first.pid)"), "\(second.log)")
        // The first agent and its Serf are untouched.
        #expect(try first.run(["get", "/k"]).stdout == "v")
        #expect(try String(contentsOfFile: serfPidFile, encoding: .utf8) == serfPid)
        let pid = try #require(Int32(serfPid.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(kill(pid, 0) == 0, "the first agent's Serf is gone")
        #expect(first.process.isRunning)
    }

    /// An agent whose node key is the cluster's root key says so in `status`; one with a node key
    /// of its own does not.
    @Test func aNodeKeyThatIsTheRootKeyIsWarnedAbout() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let asRoot = try AgentProcess(cli: cli, name: "as-root", root: root, extraArgs: ["--key", "root.key"])
        defer { _ = asRoot.stop() }
        let warnings = try asRoot.status()["warnings"] as? [String] ?? []
        #expect(warnings.contains { $0.contains("the cluster's root key") }, "\(warnings)")
        let own = try AgentProcess(cli: cli, name: "own", root: root)
        defer { _ = own.stop() }
        let none = try own.status()["warnings"] as? [String] ?? []
        #expect(!none.contains { $0.contains("root key") }, "\(none)")
    }

    /// An agent that cannot open its store stops before it writes a node key into the data
    /// directory (it used to write one first).
    @Test func aStoreThatCannotBeOpenedLeavesNoNodeKeyBehind() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let data = cli.path("bad-data")
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        try Data(repeating: 0x41, count: 8192).write(to: URL(fileURLWithPath: data + "/kvgossip.sqlite"))
        // Bounded: an agent that somehow started would otherwise run until the suite's limit.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        p.arguments = ["60", CLIProcess.binary, "agent", "--data", data, "--root", root, "--control", cli.path("bad.sock"), "--no-serf",
            "--listen", "127.0.0.1:\(LoopbackPort.free())"]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus != 0 && p.terminationStatus != 124, "\(p.terminationStatus) \(stderr)")
        #expect(stderr.contains("cannot open the store"), "\(stderr)")
        #expect(!FileManager.default.fileExists(atPath: data + "/node.key"))
    }
}
