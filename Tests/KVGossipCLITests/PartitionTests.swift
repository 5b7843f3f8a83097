import Foundation
import KVGossipTestSupport
import KVGossipTestTraits
import Testing

/// Two hosts in network namespaces of their own, joined by a bridge (NetnsLab); a partition made by
/// dropping input with nftables (the technique measured in Docs/serf-rpc.md §Simulating partitions).
@Suite(.serialized, .integration) struct PartitionTests {
    @Test func bothSidesWriteDuringAPartitionAndConvergeAfterHealing() throws {
        if let missing = NetnsLab.unavailableReason {
            Issue.record("\(missing)")
            return
        }
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let net = try NetnsLab(count: 2)
        #expect(try cli.run(["keygen", "--cluster-secret", "--out", "secret"]).status == 0)
        var agents: [AgentProcess] = []
        defer { for a in agents { a.stop() } }
        for i in 0..<2 {
            let name = i == 0 ? "A" : "B"
            let data = cli.path("\(name)-data")
            let socket = cli.path("\(name).sock")
            var args = [
                net.enter(i)[0], CLIProcess.binary, "agent", "--data", data, "--root", root, "--control", socket,
                "--key", "root.key", "--name", name, "--listen", "\(net.ip(i)):7947", "--serf-spawn",
                "--serf-bind", "\(net.ip(i)):7946", "--serf-rpc", "127.0.0.1:7373", "--serf-profile", "local",
                "--sync-interval", "3", "--log-level", "debug", "--cluster-secret", "secret",
            ]
            if i == 1 { args += ["--join", "\(net.ip(0)):7946"] }
            // nsenter enters only the network namespace, so the mount namespace (and the socket paths) stay shared.
            agents.append(try AgentProcess(cli: cli, name: name, data: data, socket: socket, arguments: args, executable: "/usr/bin/nsenter"))
        }
        let (a, b) = (agents[0], agents[1])
        // Serf's gossip leaves the host, encrypted with the cluster secret: nothing to warn about
        // (NodeIdentityTests has the same without a secret, and the warning). These agents run with
        // the root key as their node key, which is warned about (`aNodeKeyThatIsTheRootKeyIsWarnedAbout`).
        for agent in agents {
            let warnings = try agent.status()["warnings"] as? [String] ?? []
            #expect(!warnings.contains { $0.contains("Serf gossip") }, "\(warnings)")
        }
        try a.run(["set", "/shared", "before"])
        #expect(try Readiness.wait { try b.run(["get", "/shared"]).stdout == "before" })

        try net.partition([[0], [1]])
        try a.run(["set", "/only-a", "1"])
        try b.run(["set", "/only-b", "2"])
        try b.run(["set", "/shared", "from-b"])
        // A's write must be the later one: wait until the clock has passed B's timestamp.
        let fromB = try JSONSerialization.jsonObject(with: Data(try b.run(["get", "--json", "/shared"]).stdout.utf8)) as? [String: Any]
        let timestamp = try #require(fromB?["timestamp"] as? Int, "get --json: \(String(describing: fromB))")
        let physicalMs = timestamp >> 16  // the timestamp's high 48 bits are Unix milliseconds
        #expect(Readiness.wait { Int(Date().timeIntervalSince1970 * 1000) > physicalMs })
        try a.run(["set", "/shared", "from-a-later"])  // the later write wins everywhere
        // Really partitioned: a session across the cut fails, and neither side has the other's write.
        #expect(try b.run(["sync", "--peer", "\(net.ip(0)):7947"]).status != 0)
        #expect(try b.run(["get", "/only-a"]).status != 0)
        #expect(try GossipTests.treeHash(a) != GossipTests.treeHash(b))

        try net.heal()
        #expect(try Readiness.wait(timeout: 90) { try GossipTests.treeHash(a) == GossipTests.treeHash(b) })
        for agent in agents {
            #expect(try agent.run(["get", "/shared"]).stdout == "from-a-later")
            #expect(try agent.run(["get", "/only-a"]).stdout == "1")
            #expect(try agent.run(["get", "/only-b"]).stdout == "2")
        }
    }
}
