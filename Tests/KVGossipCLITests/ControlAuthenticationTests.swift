import Foundation
import KVGossipCore
import KVGossipTestSupport
import KVGossipTestTraits
import Testing

/// Who may use an agent's TCP control listener (Docs/security.md §The TCP control listener),
/// played against a real agent over real sockets: an admitted client is served over a sealed
/// connection; a stranger, a client that does not authenticate and a revoked client are refused
/// with a reason and counted; and a client refuses an impostor that answers on the agent's address.
@Suite(.serialized, .integration) struct ControlAuthenticationTests {
    /// A root; an agent with a node key of its own, admitted by a membership grant, serving TCP;
    /// a client key (`client.key`) with a grant for /app/** (`client.grant`).
    struct Setup {
        let cli: CLIProcess
        let root: String
        let agent: AgentProcess
        let port: Int

        /// The flags that reach the TCP listener (or `port`) as `key` with `grants`.
        func tcp(key: String = "client.key", grants: [String] = ["client.grant"], port: Int? = nil) -> [String] {
            ["--control", "127.0.0.1:\(port ?? self.port)", "--root", root, "--control-key", key] + grants.flatMap { ["--control-grant", $0] }
        }

        /// `set` signed with the client's key, over TCP.
        func put(_ key: String, _ value: String, port: Int? = nil) throws -> CLIProcess.Result {
            try cli.run(["set", "--key-file", "client.key", "--proof", "client.grant", key, value] + tcp(port: port))
        }

        /// The agent's refusal count for `reason` (`status`, on the Unix socket).
        func refusals(_ reason: String) throws -> Int {
            let status = try JSONSerialization.jsonObject(with: Data(try agent.run(["status", "--json"]).stdout.utf8)) as? [String: Any]
            return (status?["refusals"] as? [String: Int])?[reason] ?? 0
        }
    }

    static func setUp(_ cli: CLIProcess) throws -> Setup {
        let root = try cli.keygen("root.key")
        let node = try cli.keygen("node.key")
        let client = try cli.keygen("client.key")
        try grant(cli, ["--to", node, "--member", "--out", "node.grant"])
        try grant(cli, ["--to", client, "--pattern", "/app/**", "--out", "client.grant"])
        let port = LoopbackPort.free()
        let agent = try AgentProcess(cli: cli, root: root, extraArgs: ["--key", "node.key", "--control-listen", "127.0.0.1:\(port)"])
        let added = try agent.run(["grants", "add", "node.grant"])
        guard added.status == 0 else { throw CLIError("grants add failed: \(added.stderr)") }
        let setup = Setup(cli: cli, root: root, agent: agent, port: port)
        // The listener is up once an admitted client gets an answer there.
        guard Readiness.wait(timeout: 30, { (try? cli.run(["status"] + setup.tcp()).status) == 0 }) else {
            throw CLIError("the TCP control listener never answered an admitted client:\n\(agent.log)")
        }
        return setup
    }

    static func grant(_ cli: CLIProcess, _ args: [String]) throws {
        let r = try cli.run(["grant", "--issuer-key", "root.key"] + args)
        guard r.status == 0 else { throw CLIError("grant failed: \(r.stderr)") }
    }

    static func json(_ frame: [UInt8]?) -> [String: Any]? {
        frame.flatMap { try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any] }
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard haystack.count >= needle.count else { return false }
        return (0...(haystack.count - needle.count)).contains { haystack[$0..<$0 + needle.count].elementsEqual(needle) }
    }

    /// `kvgossip watch` running over TCP, its output collected.
    static func watch(_ target: String, _ args: [String], in cli: CLIProcess) throws -> (Process, out: OutputCollector, err: OutputCollector) {
        let watcher = Process()
        watcher.executableURL = URL(fileURLWithPath: CLIProcess.binary)
        watcher.arguments = ["watch", target] + args
        watcher.currentDirectoryURL = cli.directory
        let (out, err) = (OutputCollector(), OutputCollector())
        watcher.standardOutput = out.pipe
        watcher.standardError = err.pipe
        try watcher.run()
        return (watcher, out, err)
    }

    /// Gets, puts and watches over TCP; what the client sends is sealed (no request shows in its
    /// bytes); node-signed writes stay the Unix socket's.
    @Test func anAdmittedClientIsServedOverASealedConnection() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let s = try Self.setUp(cli)
        defer { s.agent.stop() }

        let recording = LoopbackServer.Recording()
        let proxy = LoopbackServer.recordingProxy(to: s.port, recording: recording)
        defer { proxy.stop() }
        let value = "a-value-only-its-two-ends-see"
        let put = try s.put("/app/db", value, port: proxy.port)
        #expect(put.status == 0, "\(put.stderr)")
        #expect(try cli.run(["get", "/app/db"] + s.tcp()).stdout == value)
        #expect(try s.agent.run(["get", "/app/db"]).stdout == value, "the write reached the store")
        let streams = recording.streams.withLock { $0 }
        // `set --key-file` asks the root and the current version, then puts: all on one connection
        // (one handshake), not one per request.
        #expect(streams.count == 1, "set --key-file opened \(streams.count) connections")
        for stream in streams {
            #expect(LoopbackServer.frames(stream).first?.starts(with: Array("kvgossip/control/v1\u{0}".utf8)) == true, "each opens with the handshake")
            // Each plain request names its operation and the get names its key: sealed, neither shows.
            #expect(!Self.contains(stream, Array(#""op""#.utf8)) && !Self.contains(stream, Array("/app/db".utf8)), "requests are sealed")
        }

        let (watcher, out, _) = try Self.watch("/app/**", s.tcp(), in: cli)
        defer {
            kill(watcher.processIdentifier, SIGKILL)
            watcher.waitUntilExit()
        }
        #expect(out.wait(timeout: 20) { $0.contains("/app/db = \(value)") }, "\(out.output)")
        #expect(try s.put("/app/next", "2").status == 0)
        #expect(out.wait(timeout: 20) { $0.contains("/app/next = 2") }, "\(out.output)")

        let mint = try cli.run(["set", "/app/x", "1"] + s.tcp())
        #expect(mint.status != 0 && mint.stderr.contains("local socket"), "\(mint.stderr)")
        // Every operation that acts with the node's key or on the node's peers: deleting (a
        // tombstone signed by the node), handing it grants, syncing on demand.
        for args in [["rm", "/app/db"], ["grants", "add", "client.grant"], ["sync"]] {
            let refused = try cli.run(args + s.tcp())
            #expect(refused.status != 0 && refused.stderr.contains("local socket"), "\(args): \(refused.stderr)")
        }
        #expect(try s.agent.run(["get", "/app/db"]).stdout == value, "the refused delete left the key")
        #expect(try s.agent.run(["grants", "list"]).stdout.contains("/app/**") == false, "the refused grant was not added")
        #expect(s.agent.log.contains("control client admitted"))
    }

    /// A key the cluster does not know completes the handshake's signatures but is refused, told
    /// why, counted and named in the log; the CLI says what is missing before it dials.
    @Test func aStrangerIsRefusedWithAReasonAndCounted() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let s = try Self.setUp(cli)
        defer { s.agent.stop() }
        let before = try s.refusals("no-authority")

        let stranger = SigningKey.generate()
        var refusal: Refusal?
        do {
            _ = try LinkSpeaker(
                port: s.port, cluster: try PublicKey(text: s.root), credentials: LinkSpeaker.credentials(stranger, name: "stranger"),
                service: .control)
        } catch let refused as LinkSpeaker.Refused {
            refusal = refused.refusal
        }
        #expect(refusal?.reason == .noAuthority, "\(String(describing: refusal))")
        #expect(refusal?.detail.contains("does not recognise the node key \(stranger.publicKey.fingerprint) (stranger)") == true)
        // The agent counts and logs a refusal after sending it, so the count is waited for.
        #expect(Readiness.wait { (try? s.refusals("no-authority")) == before + 1 }, "the refusal is counted")
        #expect(Readiness.wait { s.agent.log.contains("refused a control client") && s.agent.log.contains("stranger") }, "the refusal names who tried")

        _ = try cli.keygen("stranger.key")
        let early = try cli.run(["get", "/app/db"] + s.tcp(key: "stranger.key", grants: []))
        #expect(early.status != 0 && early.stderr.contains("no chain of grants from the root"), "\(early.stderr)")
        let bare = try cli.run(["get", "/app/db", "--control", "127.0.0.1:\(s.port)"])
        #expect(bare.status != 0 && bare.stderr.contains("--control-key FILE") && bare.stderr.contains("--root PUBKEY"), "\(bare.stderr)")
    }

    /// A client of the old, unauthenticated protocol gets one control answer saying why, and
    /// nothing of the tree; bytes that are neither get a handshake refusal. Both are counted.
    @Test func aClientThatDoesNotAuthenticateGetsNothing() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let s = try Self.setUp(cli)
        defer { s.agent.stop() }
        #expect(try s.put("/app/db", "kept").status == 0)
        let before = try s.refusals("no-authority")

        for request in [#"{"id":1,"op":"get","key":"/app/db"}"#, #"{"id":1,"op":"list"}"#, #"{"id":1,"op":"watch","prefix":"/app"}"#] {
            let legacy = try #require(RawSocket(tcpPort: s.port))
            legacy.sendFrame(request)
            let answer = Self.json(legacy.readFrame())
            let error = answer?["error"] as? [String: Any]
            #expect(answer?["id"] as? Int == 0 && answer?["ok"] as? Bool == false, "\(String(describing: answer))")
            #expect(error?["reason"] as? String == "no-authority" && (error?["message"] as? String)?.contains("only clients that authenticate") == true)
            #expect(answer?["record"] == nil && answer?["records"] == nil && answer?["event"] == nil)
            #expect(legacy.readUntilClosed() == [], "nothing follows the refusal")
        }
        #expect(Readiness.wait { (try? s.refusals("no-authority")) == before + 3 })

        let junk = try #require(RawSocket(tcpPort: s.port))
        junk.sendFrame(Array("hello".utf8))
        let refusal = junk.readFrame().flatMap { LinkHandshake.refusal(in: $0, service: .control) }
        #expect(refusal?.detail.contains("not a KVGossip control connection") == true, "\(String(describing: refusal))")
        #expect(Readiness.wait { (try? s.refusals("malformed")).map { $0 >= 1 } == true })
    }

    /// Strangers that start a handshake and never finish it hold handshake slots only: a source
    /// past its 8 is closed without an answer, a stalled handshake is closed when its time runs
    /// out, and with all 64 slots taken from eight addresses an admitted client still gets in (a
    /// stranger makes room).
    @Test func strangersInTheirHandshakeDoNotLockOutAClient() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let s = try Self.setUp(cli)
        defer { s.agent.stop() }
        let rootKey = try SecretKeyFile.parse(try String(contentsOfFile: cli.path("root.key"), encoding: .utf8), mode: 0o600, path: "root.key")
        /// A connection from `source` that says hello; returned with whether the agent answered
        /// (then it holds a slot: answers come only from slots).
        func stalled(from source: String) throws -> (RawSocket, answered: Bool) {
            let socket = try #require(RawSocket(tcpPort: s.port, timeout: 30, from: source))
            var hello = LinkHandshake(
                role: .initiator, cluster: rootKey.publicKey, credentials: LinkSpeaker.credentials(rootKey), secret: nil,
                ephemeral: .generate(), nonce: secureRandomBytes(LinkHandshake.nonceBytes), service: .control)
            socket.sendFrame(hello.start(nowMs: UInt64(Date().timeIntervalSince1970 * 1000)))
            return (socket, socket.readFrame() != nil)
        }
        var held = try (0..<8).map { _ in try stalled(from: "127.0.0.2") }
        let ninth = try stalled(from: "127.0.0.2")
        #expect(!ninth.answered, "a source past its share is closed without an answer")
        for source in 3...9 { held += try (0..<8).map { _ in try stalled(from: "127.0.0.\(source)") } }
        #expect(held.allSatisfy(\.answered) && held.count == 64)

        let client = try LinkSpeaker(
            port: s.port, cluster: rootKey.publicKey, credentials: LinkSpeaker.credentials(rootKey, name: "operator"), service: .control,
            from: "127.0.0.10")
        client.sendSealed(Array(#"{"id":1,"op":"status"}"#.utf8))
        #expect(Self.json(client.receiveSealed())?["ok"] as? Bool == true, "the admitted client is served")
        #expect(held.last?.0.readUntilClosed() != nil, "a stalled handshake is closed when its time is up")
    }

    /// Revoking the client's grant closes its open connection with the reason, and its next
    /// connection is refused as revoked.
    @Test func aRevokedClientIsRefusedOnItsNextConnection() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let s = try Self.setUp(cli)
        defer { s.agent.stop() }
        #expect(try s.put("/app/db", "1").status == 0)
        let (watcher, out, err) = try Self.watch("/app/**", s.tcp(), in: cli)
        defer {
            kill(watcher.processIdentifier, SIGKILL)
            watcher.waitUntilExit()
        }
        #expect(out.wait(timeout: 20) { $0.contains("/app/db = 1") }, "\(out.output)")

        let revoke = try s.agent.run(["revoke", "--key", "root.key", "client.grant"])
        #expect(revoke.status == 0, "\(revoke.stderr)")
        #expect(Readiness.wait(timeout: 20) { !watcher.isRunning }, "the revoked client's watch was closed")
        #expect(err.wait(timeout: 5) { $0.contains("revoked") && $0.contains("closing this connection") }, "\(err.output)")

        let next = try cli.run(["get", "/app/db"] + s.tcp())
        #expect(next.status != 0 && next.stderr.contains("revoked: the agent at 127.0.0.1:\(s.port) refused this client"), "\(next.stderr)")
        #expect(next.stderr.contains("is revoked"))
        #expect(Readiness.wait { (try? s.refusals("revoked")).map { $0 >= 2 } == true }, "the closed connection and the refused one")
        #expect(try s.agent.run(["status"]).status == 0, "the agent serves its socket as before")
    }

    /// A listener that completes the handshake with a key not chained to the root is refused by
    /// the client before it says who it is; so is the agent's sync port, which says what it is.
    @Test func aClientRefusesAnImpostor() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let s = try Self.setUp(cli)
        defer { s.agent.stop() }
        let impostorKey = SigningKey.generate()
        let heard = LoopbackServer.Recording()
        let impostor = Self.impostor(cluster: try PublicKey(text: s.root), key: impostorKey, heard: heard)
        defer { impostor.stop() }

        let fooled = try cli.run(["get", "/app/db"] + s.tcp(port: impostor.port))
        #expect(fooled.status != 0, "\(fooled.stdout)")
        #expect(fooled.stderr.contains("refusing the agent at 127.0.0.1:\(impostor.port), impostor (\(impostorKey.publicKey.fingerprint))"), "\(fooled.stderr)")
        #expect(fooled.stderr.contains("does not recognise the node key"))
        #expect(Readiness.wait(timeout: 10) { !heard.streams.withLock { $0.isEmpty } })
        let sent = heard.streams.withLock { $0 }
        #expect(sent.count == 1 && LinkHandshake.refusal(in: sent[0], service: .control) != nil, "a refusal instead of the client's authentication")

        let args = s.agent.process.arguments!
        let syncPort = Int(args[args.firstIndex(of: "--listen")! + 1].split(separator: ":").last!)!
        let wrongPort = try cli.run(["get", "/app/db"] + s.tcp(port: syncPort))
        #expect(wrongPort.status != 0 && wrongPort.stderr.contains("serves KVGossip links, not KVGossip control connections"), "\(wrongPort.stderr)")
    }

    /// Answers the control handshake as `key` (no grants) and keeps the frames the client sends
    /// after its server hello. A client that goes on is served to the end: every request gets a
    /// forged value.
    static func impostor(cluster: PublicKey, key: SigningKey, heard: LoopbackServer.Recording) -> LoopbackServer {
        LoopbackServer { fd, _ in
            let socket = RawSocket(borrowing: fd)
            let now = UInt64(Date().timeIntervalSince1970 * 1000)
            var machine = LinkHandshake(
                role: .responder, cluster: cluster, credentials: LinkSpeaker.credentials(key, name: "impostor"), secret: nil,
                ephemeral: .generate(), nonce: secureRandomBytes(LinkHandshake.nonceBytes), service: .control)
            guard let hello = socket.readFrame(), case .send(let serverHello)? = try? machine.receive(hello, nowMs: now) else { return }
            socket.sendFrame(serverHello)
            guard let next = socket.readFrame() else { return }
            heard.streams.withLock { $0.append(next) }
            guard case .established(let keys, _)? = try? machine.receive(next, nowMs: now) else { return }
            let sender = SecretStreamSender(key: keys.sendKey)
            socket.sendFrame(sender.header)
            guard let header = socket.readFrame(), let receiver = SecretStreamReceiver(key: keys.receiveKey, header: header) else { return }
            while let frame = socket.readFrame(), let request = Self.json(receiver.open(frame)) {
                let forged = #"{"id":\#(request["id"] as? Int ?? 0),"ok":true,"record":{"key":"/app/db","kind":"value","value":"Zm9yZ2Vk","#
                    + #""timestamp":1,"time":"2026-01-01T00:00:00.000Z","signer":"ed25519:x","digest":"00","chain":["root"],"state":"synced","dirty":false}}"#
                socket.sendFrame(sender.seal(Array(forged.utf8)))
            }
        }
    }
}
