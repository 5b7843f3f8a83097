import Foundation
import Testing

/// Two hosts in network namespaces of their own, joined by a veth pair; a partition made by
/// dropping input with nftables (the technique measured in Docs/serf-rpc.md §Simulating partitions).
@Suite(.serialized) struct PartitionTests {
    /// Runs a command and fails the test on a non-zero exit.
    @discardableResult
    static func sh(_ command: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw CLIError("`\(command)` failed (\(p.terminationStatus)): \(text)") }
        return text
    }

    final class Net {
        let names: [String]
        let subnet: Int

        init() throws {
            subnet = Int(getpid() % 200) + 20
            names = ["kvgt\(getpid())a", "kvgt\(getpid())b"]
            let (a, b) = (names[0], names[1])
            try sh("ip netns add \(a) && ip netns add \(b)")
            try sh("ip link add v\(a) type veth peer name v\(b) && ip link set v\(a) netns \(a) && ip link set v\(b) netns \(b)")
            try sh("ip -n \(a) addr add \(ip(0))/24 dev v\(a) && ip -n \(b) addr add \(ip(1))/24 dev v\(b)")
            for n in names { try sh("ip -n \(n) link set lo up && ip -n \(n) link set v\(n) up") }
        }

        func ip(_ i: Int) -> String { "10.231.\(subnet).\(i + 1)" }

        func partition() throws {
            for n in names {
                try sh("ip netns exec \(n) nft add table inet kvgpart")
                try sh("ip netns exec \(n) nft 'add chain inet kvgpart input { type filter hook input priority 0 ; }'")
                try sh("ip netns exec \(n) nft add rule inet kvgpart input iifname v\(n) drop")
            }
        }

        func heal() throws {
            for n in names { try sh("ip netns exec \(n) nft delete table inet kvgpart") }
        }

        deinit {
            for n in names { _ = try? PartitionTests.sh("ip netns del \(n)") }
        }
    }

    @Test func bothSidesWriteDuringAPartitionAndConvergeAfterHealing() throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/sbin/nft") || FileManager.default.isExecutableFile(atPath: "/sbin/nft") else {
            Issue.record("needs root and nftables (Scripts/install-deps installs nftables)")
            return
        }
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let net = try Net()
        var agents: [AgentProcess] = []
        defer { for a in agents { a.stop() } }
        for (i, ns) in net.names.enumerated() {
            let name = i == 0 ? "A" : "B"
            let data = cli.path("\(name)-data")
            let socket = cli.path("\(name).sock")
            var args = [
                "--net=/run/netns/\(ns)", CLIProcess.binary, "agent", "--data", data, "--root", root, "--control", socket,
                "--key", "root.key", "--name", name, "--listen", "\(net.ip(i)):7947", "--serf-spawn",
                "--serf-bind", "\(net.ip(i)):7946", "--serf-rpc", "127.0.0.1:7373", "--serf-profile", "local",
                "--sync-interval", "3", "--log-level", "debug",
            ]
            if i == 1 { args += ["--join", "\(net.ip(0)):7946"] }
            // nsenter enters only the network namespace, so the mount namespace (and the socket paths) stay shared.
            agents.append(try AgentProcess(cli: cli, name: name, data: data, socket: socket, arguments: args, executable: "/usr/bin/nsenter"))
        }
        let (a, b) = (agents[0], agents[1])
        try a.run(["set", "/shared", "before"])
        #expect(try GossipTests.eventually(15) { try b.run(["get", "/shared"]).stdout == "before" })

        try net.partition()
        try a.run(["set", "/only-a", "1"])
        try b.run(["set", "/only-b", "2"])
        try b.run(["set", "/shared", "from-b"])
        usleep(20_000)
        try a.run(["set", "/shared", "from-a-later"])  // the later write wins everywhere
        usleep(1_500_000)
        #expect(try b.run(["get", "/only-a"]).status != 0)  // really partitioned
        #expect(try GossipTests.treeHash(a) != GossipTests.treeHash(b))

        try net.heal()
        #expect(try GossipTests.eventually(40) { try GossipTests.treeHash(a) == GossipTests.treeHash(b) })
        for agent in agents {
            #expect(try agent.run(["get", "/shared"]).stdout == "from-a-later")
            #expect(try agent.run(["get", "/only-a"]).stdout == "1")
            #expect(try agent.run(["get", "/only-b"]).stdout == "2")
        }
    }
}
