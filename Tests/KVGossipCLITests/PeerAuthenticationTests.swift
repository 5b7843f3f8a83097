import Foundation
import KVGossipCore
import KVGossipTestSupport
import KVGossipTestTraits
import Synchronization
import Testing

/// The attacks of a network neighbour on sync, played against real agents over their real sync
/// ports: each one must change nothing and be refused with a reason (Docs/security.md).
@Suite(.serialized, .integration) struct PeerAuthenticationTests {
    static func port(_ agent: AgentProcess) -> Int {
        let args = agent.process.arguments!
        return Int(args[args.firstIndex(of: "--listen")! + 1].split(separator: ":").last!)!
    }

    /// An agent holding one key, restarted with a peer nobody answers at: every key unsynced.
    static func lonelyAgent(_ cli: CLIProcess, root: String, name: String = "U") throws -> AgentProcess {
        let alone = try AgentProcess(cli: cli, name: name, root: root, extraArgs: ["--key", "root.key"])
        try alone.run(["set", "/k", "v"])
        alone.stop()
        return try AgentProcess(cli: cli, name: name, root: root, extraArgs: ["--key", "root.key", "--peer", "127.0.0.1:\(LoopbackPort.free())"])
    }

    static func unsynced(_ agent: AgentProcess) throws -> Bool {
        (try agent.status()["dirty"] as? [String: Int])?["unsynced"] == 1
    }

    /// A stranger that speaks the protocol (old hello and done, or a real handshake with a key of
    /// its own) makes nothing synced and is refused, counted and named.
    @Test func aStrangerCannotMakeANodeSynced() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let agent = try Self.lonelyAgent(cli, root: root)
        defer { agent.stop() }
        #expect(try Self.unsynced(agent))
        let port = Self.port(agent)

        // The attack of the first release: a hello with the right cluster and a random tree hash,
        // then done. Not a link: refused at the first frame.
        let cluster = try PublicKey(text: root)
        var hello = [UInt8(1), 1] + cluster.bytes + secureRandomBytes(32)
        hello += [0, 4] + Array("evil".utf8) + [0x1f, 0x0b]
        let old = try #require(RawSocket(tcpPort: port))
        old.sendFrame(hello)
        old.sendFrame([8] + secureRandomBytes(32))
        let answer = old.readFrame().map { String(decoding: $0, as: UTF8.self) } ?? ""
        #expect(answer.contains("not a KVGossip link"), "\(answer)")

        // A real handshake with a key the cluster does not know.
        let stranger = SigningKey.generate()
        var machine = LinkHandshake(
            role: .initiator, cluster: cluster,
            credentials: LinkCredentials(signingKey: stranger, name: "stranger", syncPort: 1, credential: [], instance: secureRandomBytes(16)),
            secret: nil, ephemeral: .generate(), nonce: secureRandomBytes(32))
        let link = try #require(RawSocket(tcpPort: port))
        link.sendFrame(machine.start(nowMs: UInt64(Date().timeIntervalSince1970 * 1000)))
        let serverHello = try #require(link.readFrame())
        guard case .established(_, let auth?) = try machine.receive(serverHello, nowMs: UInt64(Date().timeIntervalSince1970 * 1000)) else {
            Issue.record("the agent's hello did not establish")
            return
        }
        link.sendFrame(auth)
        let refusal = link.readFrame().flatMap { LinkHandshake.refusal(in: $0) }
        #expect(refusal?.reason == .noAuthority && refusal?.detail.contains("does not recognise") == true, "\(String(describing: refusal))")
        #expect(link.readUntilClosed() != nil)

        #expect(try Self.unsynced(agent), "nothing a stranger says makes a node synced")
        #expect(((try agent.status()["refusals"] as? [String: Int])?["no-authority"] ?? 0) >= 1)
        #expect(agent.log.contains("stranger"), "the refusal names who tried")
    }

    /// `sync` with a plain echo server fails and says so; a key waiting for a push stays waiting.
    @Test func syncingWithAnEchoFailsClearly() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let echo = LoopbackServer.echo()
        defer { echo.stop() }
        let agent = try AgentProcess(cli: cli, name: "E", root: root, extraArgs: ["--key", "root.key", "--peer", "127.0.0.1:\(echo.port)"])
        defer { agent.stop() }
        try agent.run(["set", "/pushed", "v"])
        let sync = try agent.run(["sync", "--peer", "127.0.0.1:\(echo.port)"])
        #expect(sync.status != 0)
        #expect((sync.stdout + sync.stderr).contains("echo"), "\(sync)")
        let state = try agent.run(["get", "--json", "/pushed"]).stdout
        #expect(state.contains("\"dirty\" : true"), "\(state)")
        #expect(try Self.unsynced(agent) || state.contains("pending-push"))
    }

    /// A link recorded between two agents, played again to either of them or to a third, is refused:
    /// the recorded signature covers the other connection's keys.
    @Test func aRecordedLinkCannotBeReplayed() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let agents = try GossipTests.cluster(cli, root: root, peers: [[], [], []])
        try agents[1].run(["set", "/k", "v"])
        let recording = LoopbackServer.Recording()
        let proxy = LoopbackServer.recordingProxy(to: Self.port(agents[1]), recording: recording)
        defer { proxy.stop() }
        let sync = try agents[0].run(["sync", "--peer", "127.0.0.1:\(proxy.port)"])
        #expect(sync.status == 0, "\(sync)")
        #expect(try agents[0].run(["get", "/k"]).stdout == "v")
        let sent = LoopbackServer.frames(recording.first)
        #expect(sent.count >= 3, "hello, auth, stream header at least")
        guard sent.count >= 2 else { return }
        for target in [agents[1], agents[2]] {
            let replay = try #require(RawSocket(tcpPort: Self.port(target)))
            replay.sendFrame(sent[0])
            _ = replay.readFrame()  // a fresh server hello
            replay.sendFrame(sent[1])  // the recorded authentication
            let refusal = replay.readFrame().flatMap { LinkHandshake.refusal(in: $0) }
            #expect(refusal?.reason == .badSignature, "\(String(describing: refusal))")
        }
        for agent in agents { #expect(agent.process.isRunning) }
    }

    /// A host that only reads (a membership grant) syncs and shows the tree in its mount; once its
    /// grant is revoked, its peers refuse it at once.
    @Test func aReadOnlyHostSyncsUntilItsCredentialIsRevoked() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let writerPort = LoopbackPort.free()
        let writer = try AgentProcess(cli: cli, name: "W", root: root, extraArgs: ["--key", "root.key", "--name", "W", "--listen", "127.0.0.1:\(writerPort)"])
        defer { writer.stop() }
        let mnt = cli.path("R-kv")
        let reader = try AgentProcess(cli: cli, name: "R", root: root, extraArgs: [
            "--name", "R", "--peer", "127.0.0.1:\(writerPort)", "--mount", mnt,
        ])
        defer { reader.stop(); MountAgentTests.detach(mnt) }
        let node = try #require(try reader.status()["node"] as? String)
        #expect(try cli.run(["grant", "--issuer-key", "root.key", "--to", node, "--member", "--out", "member.grant"]).status == 0)
        #expect(try reader.run(["grants", "add", "member.grant"]).status == 0)

        try writer.run(["set", "/app/x", "1"])
        #expect(try reader.run(["sync"]).status == 0)
        #expect(Readiness.wait { (try? String(contentsOfFile: mnt + "/app/x", encoding: .utf8)) == "1" })
        #expect(try !Self.unsynced(reader))
        let denied = try MountAgentTests.shell("echo 2 > \(mnt)/app/x", in: cli)
        #expect(denied.status != 0 && denied.stderr.contains("Permission denied"), "a member writes nothing")

        // A write reaches the reader by itself (pushed over the open link), before the revocation.
        try writer.run(["set", "/app/pushed", "1"])
        #expect(Readiness.wait { (try? String(contentsOfFile: mnt + "/app/pushed", encoding: .utf8)) == "1" }, "pushes reach the member")
        // The TCP connections between the two agents' sync ports, either way round.
        let readerPort = Self.port(reader)
        func connections() throws -> Int {
            let ss = try MountAgentTests.shell("ss -Htn state established '( sport = :\(writerPort) or dport = :\(readerPort) )'", in: cli)
            return ss.stdout.split(separator: "\n").count
        }
        #expect(try connections() > 0, "the member holds a link to the writer")

        #expect(try writer.run(["revoke", "--key", "root.key", "member.grant"]).status == 0)
        // The writer closes the links it had open to the member when the revocation commits,
        // before the member asks for anything. (A redial is refused in its handshake, so some
        // probe finds none; a link left open never goes.)
        #expect(try Readiness.wait(timeout: 10) { try connections() == 0 }, "the revoked member's link stayed open")
        let after = try reader.run(["sync"])
        #expect(after.status != 0 && (after.stdout + after.stderr).contains("revoked"), "\(after)")
        #expect(((try writer.status()["refusals"] as? [String: Int])?["revoked"] ?? 0) >= 1)
        // Nothing written after the revocation reaches it, over the link it had open or a new one
        // (a push arrives within milliseconds, so two seconds without it is a refusal), and it keeps
        // serving the tree it had (Docs/security.md §Peers and links).
        try writer.run(["set", "/app/later", "1"])
        #expect(!Readiness.wait(timeout: 2) { FileManager.default.fileExists(atPath: mnt + "/app/later") }, "a revoked member still receives writes")
        #expect((try? String(contentsOfFile: mnt + "/app/x", encoding: .utf8)) == "1")
    }

    /// The spawned Serf's RPC asks for a key only the agent holds: a local user cannot retag this
    /// node (which would send the cluster's syncs elsewhere).
    @Test func theSpawnedSerfsRPCNeedsTheAgentsKey() throws {
        guard let s = try SerfGossipTests.LoneHost("S") else { return }
        defer { s.tearDown() }
        let (cli, host, agent) = (s.cli, s.host, s.agent)
        let rpc = "127.0.0.1:\(host.serfRPC)"
        for command in ["serf members -rpc-addr \(rpc)", "runuser -u nobody -- serf tags -set kvg=1 -rpc-addr \(rpc)"] {
            let r = try MountAgentTests.shell(command, in: cli)
            #expect(r.status != 0 && (r.stdout + r.stderr).contains("Authentication"), "\(command): \(r)")
        }
        let secrets = agent.data + "/serf/serf-secrets.json"
        #expect(try FileManager.default.attributesOfItem(atPath: secrets)[.posixPermissions] as? Int == 0o600)
        #expect(try FileManager.default.attributesOfItem(atPath: agent.data + "/serf")[.posixPermissions] as? Int == 0o700)
        // The agent itself still talks to its Serf: its tag is there.
        let members = try MountAgentTests.shell("serf members -rpc-addr \(rpc) -rpc-auth $(python3 -c \"import json;print(json.load(open('\(secrets)'))['rpc_auth'])\") -format json", in: cli)
        #expect(members.stdout.contains("\"kvg\": \"\(host.sync)\""), "\(members)")
    }
}
