import Foundation
import KVGossipTestTraits
import Testing
import KVGossipTestSupport

/// Agents that find each other through real Serf agents they spawn and supervise.
@Suite(.serialized, .integration) struct SerfGossipTests {
    struct Host {
        let name: String
        let sync: Int
        let serfBind: Int
        let serfRPC: Int

        /// A host named `name` on three free loopback ports.
        static func onFreePorts(_ name: String) -> Host {
            Host(name: name, sync: LoopbackPort.free(), serfBind: LoopbackPort.free(), serfRPC: LoopbackPort.free())
        }
    }

    /// One agent that spawns its own Serf (joining nobody), in a fresh directory with a root key;
    /// `tearDown` stops it and removes the directory.
    struct LoneHost {
        let cli: CLIProcess
        let root: String
        let host: Host
        let agent: AgentProcess

        /// nil, with an issue recorded, when Serf is not installed.
        init?(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            if let missing = SerfGossipTests.serfMissing {
                Issue.record("\(missing)", sourceLocation: sourceLocation)
                return nil
            }
            cli = try CLIProcess()
            do {
                root = try cli.keygen("root.key")
                host = .onFreePorts(name)
                agent = try SerfGossipTests.start(cli, host, root: root, join: nil)
            } catch {
                cli.cleanUp()
                throw error
            }
        }

        func tearDown() {
            agent.stop()
            cli.cleanUp()
        }
    }

    /// Why Serf tests cannot run here, or nil.
    static var serfMissing: String? {
        FileManager.default.isExecutableFile(atPath: "/usr/bin/serf") ? nil : "serf is not installed (Scripts/install-deps installs it)"
    }

    /// Runs `body` with a fresh directory holding a root key (the key file and its public key),
    /// and removes the directory after; records an issue and runs nothing when Serf is missing.
    static func withRootKey(sourceLocation: SourceLocation = #_sourceLocation, _ body: (CLIProcess, String) throws -> Void) throws {
        if let missing = serfMissing {
            Issue.record("\(missing)", sourceLocation: sourceLocation)
            return
        }
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        try body(cli, try cli.keygen("root.key"))
    }

    static func start(_ cli: CLIProcess, _ host: Host, root: String, join: Host?, name: String? = nil, extra: [String] = []) throws -> AgentProcess {
        var args = extra + [
            "--key", "root.key", "--name", name ?? host.name, "--listen", "127.0.0.1:\(host.sync)", "--sync-interval", "3600",
            "--serf-spawn", "--serf-bind", "127.0.0.1:\(host.serfBind)", "--serf-rpc", "127.0.0.1:\(host.serfRPC)", "--serf-profile", "local",
        ]
        if let join { args += ["--join", "127.0.0.1:\(join.serfBind)"] }
        let data = cli.path("\(host.name)-data")
        let socket = cli.path("\(host.name).sock")
        return try AgentProcess(
            cli: cli, name: host.name, data: data, socket: socket,
            arguments: ["agent", "--data", data, "--root", root, "--control", socket, "--log-level", "debug"] + args)
    }

    @Test func serfMembersGossipAndARestartedHostCatchesUpThroughTheStartupQuery() throws {
        try Self.withRootKey { cli, root in
            let hosts = ["A", "B", "C"].map(Host.onFreePorts)
            var agents: [AgentProcess] = []
            for (i, h) in hosts.enumerated() { agents.append(try Self.start(cli, h, root: root, join: i == 0 ? nil : hosts[0])) }
            defer { for a in agents { a.stop() } }

            // Membership comes from Serf: every agent lists the two others as peers.
            let listed = try Readiness.wait { try agents.allSatisfy { try $0.run(["status"]).stdout.components(separatedBy: "last-sync=").count == 3 } }
            let statuses = try agents.map { try $0.run(["status"]).stdout }
            #expect(listed, "\(statuses)")
            try agents[0].run(["set", "/app/db/url", "postgres://db2"])
            for a in agents[1...] { #expect(try Readiness.wait { try a.run(["get", "/app/db/url"]).stdout == "postgres://db2" }) }

            // C goes down (a graceful leave), A writes, C comes back and catches up at start.
            #expect(agents[2].stop() == 0)
            for i in 0..<20 { try agents[0].run(["set", "/k/\(i)", "v\(i)"]) }
            agents[2] = try Self.start(cli, hosts[2], root: root, join: hosts[0])
            #expect(try Readiness.wait { try agents[2].run(["get", "/k/19"]).stdout == "v19" })
            #expect(try Readiness.wait { Set(try agents.map(GossipTests.treeHash)).count == 1 })
            // Once the start-up query is over, C's keys are clean.
            #expect(try Readiness.wait { try agents[2].run(["get", "--json", "/k/3"]).stdout.contains("\"dirty\" : false") })
        }
    }

    /// With a cluster secret, the spawned Serf gossips encrypted under a key drawn from it
    /// (Docs/security.md §Peers and links): hosts holding the secret form one membership, and a Serf
    /// without the key, or with another one, cannot join it.
    @Test func theClusterSecretEncryptsSerfsGossipAndKeepsOtherSerfsOut() throws {
        try Self.withRootKey { cli, root in
            #expect(try cli.run(["keygen", "--cluster-secret", "--out", "secret"]).status == 0)
            let hosts = ["A", "B"].map(Host.onFreePorts)
            var agents: [AgentProcess] = []
            defer { for a in agents { a.stop() } }
            for (i, h) in hosts.enumerated() {
                agents.append(try Self.start(cli, h, root: root, join: i == 0 ? nil : hosts[0], extra: ["--cluster-secret", "secret"]))
            }
            // Each lists the other: the shared key lets them gossip.
            #expect(try Readiness.wait { try agents.allSatisfy { try $0.run(["status"]).stdout.components(separatedBy: "last-sync=").count == 2 } })

            // Strangers: a Serf with no key and one with a key of its own each try to join A.
            let otherKey = try MountAgentTests.shell("serf keygen", in: cli).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            for (name, encrypt) in [("plain", [String]()), ("other-key", ["-encrypt", otherKey])] {
                let stranger = Host.onFreePorts(name)
                let serf = Process()
                serf.executableURL = URL(fileURLWithPath: "/usr/bin/serf")
                serf.arguments = ["agent", "-node", name, "-bind", "127.0.0.1:\(stranger.serfBind)", "-rpc-addr", "127.0.0.1:\(stranger.serfRPC)", "-profile", "local"] + encrypt
                serf.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
                serf.standardError = FileHandle(forWritingAtPath: "/dev/null")
                try serf.run()
                defer { serf.stop(signal: SIGTERM, grace: 5) }
                let rpc = "-rpc-addr 127.0.0.1:\(stranger.serfRPC)"
                #expect(try Readiness.wait { try MountAgentTests.shell("serf members \(rpc)", in: cli).status == 0 }, "\(name) never answered")
                let join = try MountAgentTests.shell("serf join \(rpc) 127.0.0.1:\(hosts[0].serfBind)", in: cli)
                #expect(join.status != 0, "\(name) joined an encrypted membership: \(join)")
                #expect(!(try MountAgentTests.shell("serf members \(rpc)", in: cli).stdout.contains("A")), "\(name) lists A")
            }
            #expect(try agents[0].run(["status"]).stdout.components(separatedBy: "last-sync=").count == 2, "A lists a stranger")
        }
    }

    /// A Serf agent started separately (`--serf`) keeps its own node name (`serf-a`), which is not
    /// the agent's `--name` (`kv-a`): the agent takes Serf's name for itself, so it does not list
    /// its own Serf member as a peer (it did: the members list shows it under Serf's name).
    @Test func anAgentOnASeparateSerfThatNamesItDifferentlyIsNotItsOwnPeer() throws {
        try Self.withRootKey { cli, root in
            let hosts = ["a", "b"].map(Host.onFreePorts)
            var serfs: [Process] = []
            defer { for serf in serfs { serf.stop(signal: SIGTERM, grace: 5) } }
            for (i, h) in hosts.enumerated() {
                let serf = Process()
                serf.executableURL = URL(fileURLWithPath: "/usr/bin/serf")
                serf.arguments = ["agent", "-node", "serf-\(h.name)", "-bind", "127.0.0.1:\(h.serfBind)", "-rpc-addr", "127.0.0.1:\(h.serfRPC)", "-profile", "local"]
                    + (i == 0 ? [] : ["-join", "127.0.0.1:\(hosts[0].serfBind)"])
                serf.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
                serf.standardError = FileHandle(forWritingAtPath: "/dev/null")
                try serf.run()
                serfs.append(serf)
                // Each Serf answers before the next one joins it and before an agent dials it.
                let answers = try Readiness.wait {
                    let probe = Process()
                    probe.executableURL = URL(fileURLWithPath: "/usr/bin/serf")
                    probe.arguments = ["members", "-rpc-addr", "127.0.0.1:\(h.serfRPC)"]
                    probe.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
                    probe.standardError = FileHandle(forWritingAtPath: "/dev/null")
                    try probe.run()
                    probe.waitUntilExit()
                    return probe.terminationStatus == 0
                }
                #expect(answers, "serf-\(h.name) never answered on its RPC port")
            }
            var agents: [AgentProcess] = []
            defer { for a in agents { a.stop() } }
            for h in hosts {
                let data = cli.path("\(h.name)-data")
                let socket = cli.path("\(h.name).sock")
                agents.append(try AgentProcess(
                    cli: cli, name: h.name, data: data, socket: socket,
                    arguments: ["agent", "--data", data, "--root", root, "--control", socket, "--log-level", "debug", "--key", "root.key",
                                "--name", "kv-\(h.name)", "--listen", "127.0.0.1:\(h.sync)", "--sync-interval", "3600",
                                "--serf", "127.0.0.1:\(h.serfRPC)"]))
            }
            // Once each agent lists a peer (a line with its sync port), it lists the other one only.
            func peerLines(_ agent: AgentProcess) throws -> [String] {
                try agent.run(["status"]).stdout.split(separator: "\n").filter { $0.hasPrefix("  ") && $0.contains(" sync=") }.map(String.init)
            }
            #expect(try Readiness.wait { try agents.allSatisfy { try !peerLines($0).isEmpty } })
            for (agent, other) in zip(agents, hosts.reversed()) {
                let lines = try peerLines(agent)
                #expect(lines.count == 1 && lines[0].contains("sync=\(other.sync)"), "\(lines)")
            }
        }
    }
}
