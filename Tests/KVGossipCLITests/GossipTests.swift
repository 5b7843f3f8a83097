import Foundation
import KVGossipTestTraits
import Testing
import KVGossipTestSupport

/// Several real agents on loopback with static peers: push, catch-up, convergence, revocation
/// spread and hostile peers. (The Serf-driven triggers are tested with real Serf agents elsewhere.)
@Suite(.serialized, .integration) struct GossipTests {

    /// Agents named A, B, C… each listening on its own port, peers given as indexes.
    static func cluster(_ cli: CLIProcess, root: String, peers: [[Int]], extra: [String] = [], each: (Int) -> [String] = { _ in [] }) throws -> [AgentProcess] {
        let ports = peers.indices.map { _ in LoopbackPort.free() }
        return try peers.indices.map { i in
            let name = String(UnicodeScalar(UInt8(65 + i)))
            var args = ["--key", "root.key", "--name", name, "--listen", "127.0.0.1:\(ports[i])", "--sync-interval", "3600"] + extra + each(i)
            for p in peers[i] { args += ["--peer", "127.0.0.1:\(ports[p])"] }
            return try AgentProcess(cli: cli, name: name, root: root, extraArgs: args)
        }
    }

    static func treeHash(_ agent: AgentProcess) throws -> String {
        try agent.status()["treeHash"] as? String ?? "?"
    }

    /// True once every agent has completed a session of its own with every peer it lists: start-up
    /// sessions and the repairs of those that failed (an agent started before its peer listened)
    /// are over, so with periodic rounds off no session runs until a test asks for one.
    static func everySessionDone(_ agents: [AgentProcess]) throws -> Bool {
        try agents.allSatisfy { agent in
            let peers = try agent.status()["peers"] as? [[String: Any]] ?? []
            return !peers.isEmpty && peers.allSatisfy { $0["lastSync"] is String }
        }
    }

    @Test func aWriteOnOneHostIsPushedToTheOthers() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let agents = try Self.cluster(cli, root: root, peers: [[1, 2], [0, 2], [0, 1]])
        try agents[0].run(["set", "/app/db/url", "postgres://db2"])
        for agent in agents[1...] {
            #expect(try Readiness.wait { try agent.run(["get", "/app/db/url"]).stdout == "postgres://db2" })
        }
        // The writer's key is dirty until a peer acknowledged it, then clean.
        #expect(try Readiness.wait { try agents[0].run(["get", "--json", "/app/db/url"]).stdout.contains("\"dirty\" : false") })
        #expect(try Readiness.wait { Set(try agents.map(Self.treeHash)).count == 1 })
    }

    /// Three hosts that all know each other: the writer pushes to both others, and neither forwards
    /// (the other already has it from the writer), so a write costs two pushes, not four.
    @Test func inAClusterOfThreeOnlyTheWriterPushes() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let metrics = (0..<3).map { _ in LoopbackPort.free() }
        let agents = try Self.cluster(cli, root: root, peers: [[1, 2], [0, 2], [0, 1]]) { ["--metrics-listen", "127.0.0.1:\(metrics[$0])"] }
        func pushes(_ i: Int) throws -> Int {
            try MetricsTests.http("GET", "/metrics", port: metrics[i]).split(separator: "\n")
                .filter { $0.hasPrefix("kvgossip_pushes_total{") }
                .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0) { $0 + Int($1) }
        }
        let writes = 10
        for i in 0..<writes {
            try agents[0].run(["set", "/three/k\(i)", "v\(i)"])
            for agent in agents[1...] {
                #expect(try Readiness.wait { try agent.run(["get", "/three/k\(i)"]).stdout == "v\(i)" })
            }
        }
        // Every push of the writer answered (its keys clean), and the hosts agree.
        #expect(try Readiness.wait { try pushes(0) == 2 * writes })
        #expect(try Readiness.wait { Set(try agents.map(Self.treeHash)).count == 1 })
        let forwarded = [try pushes(1), try pushes(2)]
        #expect(forwarded == [0, 0], "receivers forwarded")
    }

    /// In a cluster of five the writer pushes to every other host itself (direct mail), so each
    /// write reaches every host without anti-entropy; static peers, configured by address only,
    /// are known by name once their hello told it (which is how a forwarder leaves out the peer a
    /// record came from).
    @Test func pushesReachEveryHostOfFiveAndStaticPeersAreNamed() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let all = Array(0..<5)
        let agents = try Self.cluster(cli, root: root, peers: all.map { i in all.filter { $0 != i } })
        var missed: [String] = []
        for i in 0..<40 {
            try agents[0].run(["set", "/push/k", "v\(i)"])
            for (k, agent) in agents.enumerated().dropFirst() where !(try Readiness.wait(timeout: 10) { try agent.run(["get", "/push/k"]).stdout == "v\(i)" }) {
                missed.append("v\(i) on agent \(k)")
            }
        }
        #expect(missed.isEmpty, "\(missed)")
        let status = try agents[1].run(["status", "--json"]).stdout
        #expect(status.contains("\"name\" : \"A\""), "\(status)")
    }

    @Test func aHostThatWasDownCatchesUpAtStart() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        var agents = try Self.cluster(cli, root: root, peers: [[1], [0]])
        agents[1].stop()
        for i in 0..<30 { try agents[0].run(["set", "/k/\(i)", "v\(i)"]) }
        try agents[0].run(["rm", "/k/7"])
        // B comes back with the same data dir and port; its start-up session fetches everything.
        let args = agents[1].process.arguments!
        let port = args[args.firstIndex(of: "--listen")! + 1]
        let peerArgs = ["--key", "root.key", "--name", "B", "--listen", port, "--sync-interval", "3600", "--peer", args[args.firstIndex(of: "--peer")! + 1]]
        agents[1] = try AgentProcess(cli: cli, name: "B", root: root, extraArgs: peerArgs)
        #expect(try Readiness.wait { try agents[1].run(["get", "/k/29"]).stdout == "v29" })
        #expect(try agents[1].run(["get", "/k/7"]).status != 0)
        #expect(try Readiness.wait { try Self.treeHash(agents[0]) == Self.treeHash(agents[1]) })
    }

    /// A host that joins a tree of 2,000 keys pulls them in batches; each batch's checks begin as
    /// it arrives, while the one before it commits (`kvgossip_sync_batches_checked_on_arrival_total`),
    /// and the two hosts end equal.
    @Test func pulledBatchesAreCheckedAsTheyArrive() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        try TreeGenerator.fill(directory: cli.path("A-data"), root: ControlScaleTests.root, count: 2_000)
        try ControlScaleTests.writeRootKey(cli)
        let root = ControlScaleTests.root.publicKey.text
        let metrics = LoopbackPort.free()
        let agents = try Self.cluster(cli, root: root, peers: [[], [0]]) { $0 == 1 ? ["--metrics-listen", "127.0.0.1:\(metrics)"] : [] }
        #expect(try Readiness.wait(timeout: 60) { try Self.treeHash(agents[0]) == Self.treeHash(agents[1]) })
        #expect(try agents[1].run(["get", TreeGenerator.key(1_999, under: "/big")]).status == 0)
        let checked = try MetricsTests.http("GET", "/metrics", port: metrics).split(separator: "\n")
            .first { $0.hasPrefix("kvgossip_sync_batches_checked_on_arrival_total ") }
            .flatMap { $0.split(separator: " ").last.flatMap { Double($0) } } ?? 0
        // 2,000 records come in batches of at most 256: at least seven of them queue behind another.
        #expect(checked >= 1, "no pulled batch was checked on arrival")
    }

    @Test func concurrentWritesConvergeToTheSameWinner() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let agents = try Self.cluster(cli, root: root, peers: [[1, 2], [0, 2], [0, 1]])
        for round in 0..<10 {
            let a = Process(), b = Process()
            for (p, agent, value) in [(a, agents[0], "from-A-\(round)"), (b, agents[1], "from-B-\(round)")] {
                p.executableURL = URL(fileURLWithPath: CLIProcess.binary)
                p.arguments = ["set", "/race", value, "--control", agent.socket]
                try p.run()
            }
            a.waitUntilExit()
            b.waitUntilExit()
        }
        var seen: [String] = []
        #expect(try Readiness.wait {
            let values = try agents.map { try $0.run(["get", "/race"]).stdout }
            let hashes = try agents.map(Self.treeHash)
            seen = values
            return Set(values).count == 1 && Set(hashes).count == 1
        }, "values: \(seen); logs: \(agents.map { $0.log.suffix(1500) })")
    }

    @Test func revocationRefusalTeachesTheSenderAndAntiEntropyTeachesTheRest() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let alice = try cli.keygen("alice.key")
        #expect(try cli.run(["grant", "--issuer-key", "root.key", "--to", alice, "--pattern", "/team/**", "--out", "alice.grant"]).status == 0)
        // B knows only A; C knows only A. Periodic rounds are off (1 h).
        let agents = try Self.cluster(cli, root: root, peers: [[1, 2], [0], [0]])
        let (a, b, c) = (agents[0], agents[1], agents[2])
        // B must not hear of the revocation before its write: A's repair of a failed start-up
        // session would teach it, and on a busy machine that repair can come seconds late.
        #expect(try Readiness.wait(timeout: 60) { try Self.everySessionDone(agents) })
        #expect(try a.run(["revoke", "--key", "root.key", "alice.grant"]).status == 0)
        // B has not heard; it accepts Alice's write and pushes it to A, which refuses with the revocation.
        let w = try b.run(["set", "--key-file", "alice.key", "--proof", "alice.grant", "/team/x", "v"])
        #expect(w.status == 0, "\(w.stderr)")
        #expect(try Readiness.wait { try b.run(["get", "/team/x"]).status != 0 })
        #expect(try b.run(["status"]).stdout.contains("1 revocations"))
        #expect(try a.run(["get", "/team/x"]).status != 0)
        // C learns the revocation through an anti-entropy session alone: the one it asks for here,
        // or A's repair of its failed start-up session with C (A started before C listened, and a
        // failed session is repaired a second later, backing off), whichever comes first. No push
        // carries revocations.
        #expect(try c.run(["sync"]).status == 0)
        #expect(try c.run(["status"]).stdout.contains("1 revocations"))
        #expect(try Readiness.wait { Set(try agents.map(Self.treeHash)).count == 1 })
    }

    @Test func aClusterSecretEncryptsSyncAndKeepsOutsidersOut() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        #expect(try cli.run(["keygen", "--cluster-secret", "--out", "secret"]).status == 0)
        #expect(try cli.run(["keygen", "--cluster-secret", "--out", "other-secret"]).status == 0)
        let agents = try Self.cluster(cli, root: root, peers: [[1], [0]], extra: ["--cluster-secret", "secret"])
        try agents[0].run(["set", "/enc", "hidden"])
        #expect(try Readiness.wait { try agents[1].run(["get", "/enc"]).stdout == "hidden" })
        let port = agents[0].process.arguments![agents[0].process.arguments!.firstIndex(of: "--listen")! + 1]
        let wrong = try AgentProcess(cli: cli, name: "W", root: root, extraArgs: [
            "--key", "root.key", "--listen", "127.0.0.1:\(LoopbackPort.free())", "--cluster-secret", "other-secret",
        ])
        let plain = try AgentProcess(cli: cli, name: "P", root: root, extraArgs: ["--key", "root.key", "--listen", "127.0.0.1:\(LoopbackPort.free())"])
        #expect(try wrong.run(["sync", "--peer", port]).status != 0)
        #expect(try plain.run(["sync", "--peer", port]).status != 0)
        #expect(try wrong.run(["get", "/enc"]).status != 0)
        #expect(agents[0].process.isRunning)
    }

    @Test func hostilePeersAreRefusedWithoutHarm() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let agents = try Self.cluster(cli, root: root, peers: [[]])
        let a = agents[0]
        try a.run(["set", "/safe", "1"])
        let before = try Self.treeHash(a)
        let args = a.process.arguments!
        let port = Int(args[args.firstIndex(of: "--listen")! + 1].split(separator: ":").last!)!

        /// Sends `bytes` and waits until the agent, having read them, closes the connection.
        func send(_ bytes: [UInt8]) {
            guard let connection = RawSocket(tcpPort: port) else {
                Issue.record("the sync port did not accept a connection")
                return
            }
            connection.send(bytes)
            #expect(connection.readUntilClosed() != nil, "the agent kept a hostile connection open")
        }
        send(Array("GET / HTTP/1.1\r\n\r\n".utf8))              // garbage
        send([0x7f, 0xff, 0xff, 0xff] + [UInt8](repeating: 0, count: 100))  // a 2 GiB frame header
        send([0, 0, 0, 2, 0x63, 0x00])                        // unknown message type

        // Another cluster, and a record with a bad signature, through a real peer session.
        let other = try cli.keygen("other.key")
        let otherAgent = try AgentProcess(cli: cli, name: "O", root: other, extraArgs: ["--key", "other.key", "--listen", "127.0.0.1:\(LoopbackPort.free())"])
        try otherAgent.run(["set", "/safe", "evil"])
        let foreign = try otherAgent.run(["sync", "--peer", "127.0.0.1:\(port)"])
        #expect(foreign.status != 0 && (foreign.stdout + foreign.stderr).contains("different cluster"), "\(foreign)")

        #expect(try a.run(["get", "/safe"]).stdout == "1")
        #expect(try Self.treeHash(a) == before)
        #expect(a.process.isRunning)
    }
}
