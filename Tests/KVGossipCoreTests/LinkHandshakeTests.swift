import Testing
@testable import KVGossipCore

/// The link handshake (Docs/protocol.md §Links) between two in-memory ends, and the attacks it
/// must stop: echo, replay, a swapped key, the wrong secret, a node talking to itself.
@Suite struct LinkHandshakeTests {
    static let now = Fixture.now

    static func credentials(_ key: SigningKey, _ name: String, instance: UInt8? = nil) -> LinkCredentials {
        let fill: UInt8 = instance ?? Hash256.of(Array(name.utf8)).bytes[0]
        return LinkCredentials(signingKey: key, name: name, syncPort: 7947, credential: [], instance: [UInt8](repeating: fill, count: 16))
    }

    static func end(
        _ role: LinkHandshake.Role, _ key: SigningKey, seed: UInt8, secret: ClusterSecret? = nil, service: LinkHandshake.Service = .sync
    ) -> LinkHandshake {
        LinkHandshake(
            role: role, cluster: Fixture.cluster, credentials: credentials(key, "n\(seed)"), secret: secret,
            ephemeral: KeyExchangeKeyPair(seed: [UInt8](repeating: seed, count: 32)),
            nonce: [UInt8](repeating: seed &+ 100, count: 32), service: service)
    }

    /// Runs a whole handshake; returns both results and the three frames.
    static func run(_ a: inout LinkHandshake, _ b: inout LinkHandshake) throws(Refusal)
        -> (LinkHandshake.Established, LinkHandshake.Established, [[UInt8]])
    {
        let hello = a.start(nowMs: now)
        guard case .send(let serverHello) = try b.receive(hello, nowMs: now) else { throw Refusal(.malformed, "no server hello") }
        guard case .established(let ea, let auth?) = try a.receive(serverHello, nowMs: now) else { throw Refusal(.malformed, "no auth") }
        guard case .established(let eb, nil) = try b.receive(auth, nowMs: now) else { throw Refusal(.malformed, "not established") }
        return (ea, eb, [hello, serverHello, auth])
    }

    @Test func bothSidesLearnEachOtherAndAgreeOnOneKeyPerDirection() throws {
        var a = Self.end(.initiator, Fixture.alice, seed: 1)
        var b = Self.end(.responder, Fixture.bob, seed: 2)
        let (ea, eb, _) = try Self.run(&a, &b)
        #expect(ea.peer.nodeKey == Fixture.bob.publicKey && ea.peer.name == "n2")
        #expect(eb.peer.nodeKey == Fixture.alice.publicKey && eb.peer.name == "n1")
        #expect(ea.sendKey == eb.receiveKey && ea.receiveKey == eb.sendKey)
        #expect(ea.sendKey != ea.receiveKey, "one key per direction: a reflected frame does not decrypt")
    }

    @Test func anEchoIsRecognised() {
        var a = Self.end(.initiator, Fixture.alice, seed: 1)
        let hello = a.start(nowMs: Self.now)
        #expect { _ = try a.receive(hello, nowMs: Self.now) } throws: { ($0 as? Refusal)?.detail.contains("echo") == true }
    }

    /// A recorded handshake played to another node (or the same one again) proves nothing: its
    /// signatures cover the other connection's keys and nonces.
    @Test func aRecordedHandshakeCannotBeReplayed() throws {
        var a = Self.end(.initiator, Fixture.alice, seed: 1)
        var b = Self.end(.responder, Fixture.bob, seed: 2)
        let (_, _, frames) = try Self.run(&a, &b)
        // The same responder key, a fresh connection (new ephemeral key and nonce).
        var again = Self.end(.responder, Fixture.bob, seed: 3)
        _ = try again.receive(frames[0], nowMs: Self.now)
        #expect { _ = try again.receive(frames[2], nowMs: Self.now) } throws: { ($0 as? Refusal)?.reason == .badSignature }
        // Played to the initiator again, the recorded server hello is refused too.
        var fresh = Self.end(.initiator, Fixture.alice, seed: 4)
        _ = fresh.start(nowMs: Self.now)
        #expect { _ = try fresh.receive(frames[1], nowMs: Self.now) } throws: { ($0 as? Refusal)?.reason == .badSignature }
    }

    /// A man in the middle swapping the key exchange key (to read the stream) breaks the signature.
    @Test func aSwappedKeyExchangeKeyIsNoticed() throws {
        var a = Self.end(.initiator, Fixture.alice, seed: 1)
        var b = Self.end(.responder, Fixture.bob, seed: 2)
        let hello = a.start(nowMs: Self.now)
        guard case .send(var serverHello) = try b.receive(hello, nowMs: Self.now) else { Issue.record("no server hello"); return }
        let kxOffset = LinkHandshake.tag.count + 2 + 32
        let mallorys = KeyExchangeKeyPair(seed: [UInt8](repeating: 9, count: 32)).publicKey
        serverHello.replaceSubrange(kxOffset..<kxOffset + 32, with: mallorys)
        #expect { _ = try a.receive(serverHello, nowMs: Self.now) } throws: { ($0 as? Refusal)?.reason == .badSignature }
    }

    @Test func theClusterSecretMustMatch() throws {
        let one = ClusterSecret(text: ClusterSecret.generate())!, other = ClusterSecret(text: ClusterSecret.generate())!
        // Both with the same secret: established, with keys of their own.
        var a = Self.end(.initiator, Fixture.alice, seed: 1, secret: one)
        var b = Self.end(.responder, Fixture.bob, seed: 2, secret: one)
        let (withSecret, _, _) = try Self.run(&a, &b)
        var c = Self.end(.initiator, Fixture.alice, seed: 1)
        var d = Self.end(.responder, Fixture.bob, seed: 2)
        let (without, _, _) = try Self.run(&c, &d)
        #expect(withSecret.sendKey != without.sendKey, "the secret is part of the stream keys")

        for (x, y) in [(one, other), (one, nil), (nil, one)] as [(ClusterSecret?, ClusterSecret?)] {
            var i = Self.end(.initiator, Fixture.alice, seed: 1, secret: x)
            var r = Self.end(.responder, Fixture.bob, seed: 2, secret: y)
            #expect { _ = try r.receive(i.start(nowMs: Self.now), nowMs: Self.now) } throws: { ($0 as? Refusal)?.reason == .noAuthority }
        }
    }

    @Test func aNodeDoesNotLinkToItself() {
        let me = Self.credentials(Fixture.alice, "me", instance: 5)
        var a = LinkHandshake(role: .initiator, cluster: Fixture.cluster, credentials: me, secret: nil,
                              ephemeral: KeyExchangeKeyPair(seed: [UInt8](repeating: 1, count: 32)), nonce: [UInt8](repeating: 1, count: 32))
        var b = LinkHandshake(role: .responder, cluster: Fixture.cluster, credentials: me, secret: nil,
                              ephemeral: KeyExchangeKeyPair(seed: [UInt8](repeating: 2, count: 32)), nonce: [UInt8](repeating: 2, count: 32))
        #expect { _ = try Self.run(&a, &b) } throws: { ($0 as? Refusal)?.detail.contains("itself") == true }
        // Two processes with one node key (another instance) do link.
        var c = Self.end(.initiator, Fixture.alice, seed: 1)
        var d = LinkHandshake(role: .responder, cluster: Fixture.cluster, credentials: Self.credentials(Fixture.alice, "twin", instance: 9), secret: nil,
                              ephemeral: KeyExchangeKeyPair(seed: [UInt8](repeating: 2, count: 32)), nonce: [UInt8](repeating: 2, count: 32))
        #expect(throws: Never.self) { _ = try Self.run(&c, &d) }
    }

    @Test func anotherClusterOrProtocolIsRefused() throws {
        var a = LinkHandshake(
            role: .initiator, cluster: Fixture.mallory.publicKey, credentials: Self.credentials(Fixture.alice, "a"), secret: nil,
            ephemeral: KeyExchangeKeyPair(seed: [UInt8](repeating: 1, count: 32)), nonce: [UInt8](repeating: 1, count: 32))
        var b = Self.end(.responder, Fixture.bob, seed: 2)
        #expect { _ = try b.receive(a.start(nowMs: Self.now), nowMs: Self.now) } throws: { ($0 as? Refusal)?.detail.contains("different cluster") == true }
        var c = Self.end(.responder, Fixture.bob, seed: 2)
        #expect { _ = try c.receive(Array("GET / HTTP/1.1\r\n\r\n".utf8), nowMs: Self.now) } throws: { ($0 as? Refusal)?.detail.contains("not a KVGossip link") == true }
    }

    /// Caught by the link-identity fuzz target: a node name over the limit was cut inside a character,
    /// which read back as U+FFFD, over the limit again, so every peer refused the link.
    @Test func aLongNodeNameIsCutBetweenCharacters() throws {
        let name = String(repeating: "n", count: LinkIdentity.maxNameBytes - 1) + "é"  // 2 bytes: the cut falls inside
        var a = LinkHandshake(
            role: .initiator, cluster: Fixture.cluster, credentials: Self.credentials(Fixture.alice, name), secret: nil,
            ephemeral: KeyExchangeKeyPair(seed: [UInt8](repeating: 1, count: 32)), nonce: [UInt8](repeating: 1, count: 32))
        var b = Self.end(.responder, Fixture.bob, seed: 2)
        let (_, heard, _) = try Self.run(&a, &b)
        #expect(heard.peer.name == String(name.dropLast()))
    }

    /// A connection reads no frame larger than `LinkHandshake.maxFrameBytes` until its peer is
    /// admitted, so the largest server hello must fit: the longest name, a secret's MAC, eight
    /// grants, each grown (on paper) to the largest a credential may hold, under either tag.
    @Test func theLargestServerHelloFitsTheOpeningFrameLimit() throws {
        let issuer = Fixture.carol
        let grants = try (0..<LinkIdentity.maxCredentialGrants).map { i in
            try Grant(
                cluster: Fixture.cluster, issuer: issuer, issuee: Fixture.bob.publicKey, patterns: [Pattern("/app/**")], mayDelegate: true,
                notBefore: 0, expires: nil, nonce: [UInt8](repeating: UInt8(i), count: 16))
        }
        let secret = ClusterSecret(text: ClusterSecret.generate())!
        let name = String(repeating: "n", count: LinkIdentity.maxNameBytes)
        for service in LinkHandshake.Service.allCases {
            func end(_ role: LinkHandshake.Role, _ key: SigningKey, _ credential: [Grant], seed: UInt8) -> LinkHandshake {
                LinkHandshake(
                    role: role, cluster: Fixture.cluster,
                    credentials: LinkCredentials(signingKey: key, name: name, syncPort: 7947, credential: credential, instance: [UInt8](repeating: seed, count: 16)),
                    secret: secret, ephemeral: KeyExchangeKeyPair(seed: [UInt8](repeating: seed, count: 32)),
                    nonce: [UInt8](repeating: seed, count: 32), service: service)
            }
            var a = end(.initiator, Fixture.alice, [], seed: 1)
            var b = end(.responder, Fixture.bob, grants, seed: 2)
            let (heard, _, frames) = try Self.run(&a, &b)
            #expect(heard.peer.credential.count == LinkIdentity.maxCredentialGrants && heard.peer.name == name)
            let grown = frames[1].count + grants.reduce(0) { $0 + LinkIdentity.maxGrantBytes - $1.encoded.count }
            #expect(grown <= LinkHandshake.maxFrameBytes, "\(service): \(grown) bytes")
            #expect(frames.allSatisfy { $0.count <= LinkHandshake.maxFrameBytes })
        }
    }

    /// Caught by the link-handshake fuzz target: a refusal's sentence over 1000 bytes was cut inside
    /// a character and arrived with U+FFFD in place of its last bytes.
    @Test func aLongRefusalIsCutBetweenCharacters() {
        let sentence = String(repeating: "r", count: 999) + "é"
        let told = LinkHandshake.refusal(in: LinkHandshake.refusalFrame(Refusal(.revoked, sentence)))
        #expect(told?.reason == .revoked && told?.detail == "the peer refused the link: " + String(sentence.dropLast()))
    }

    /// Every truncation of every frame is refused cleanly.
    @Test func truncatedFramesAreRefused() throws {
        var a = Self.end(.initiator, Fixture.alice, seed: 1)
        var b = Self.end(.responder, Fixture.bob, seed: 2)
        let (_, _, frames) = try Self.run(&a, &b)
        for length in 0..<frames[0].count {
            var r = Self.end(.responder, Fixture.bob, seed: 2)
            #expect(throws: Refusal.self) { _ = try r.receive(Array(frames[0].prefix(length)), nowMs: Self.now) }
        }
        for length in 0..<frames[1].count {
            var i = Self.end(.initiator, Fixture.alice, seed: 1)
            _ = i.start(nowMs: Self.now)
            #expect(throws: Refusal.self) { _ = try i.receive(Array(frames[1].prefix(length)), nowMs: Self.now) }
        }
    }

    /// The control listener's handshake is the link handshake under its own tag: it completes
    /// between two control ends, and each service refuses the other's hello at the first frame,
    /// saying which service the address serves (a client that dialled the sync port is told).
    @Test func eachServiceRefusesTheOthersHandshake() throws {
        var client = Self.end(.initiator, Fixture.alice, seed: 1, service: .control)
        var agent = Self.end(.responder, Fixture.bob, seed: 2, service: .control)
        let (ea, eb, frames) = try Self.run(&client, &agent)
        #expect(ea.peer.nodeKey == Fixture.bob.publicKey && ea.sendKey == eb.receiveKey)
        #expect(frames[0].starts(with: Array("kvgossip/control/v1\u{0}".utf8)))

        var wrongPort = Self.end(.initiator, Fixture.alice, seed: 3, service: .control)
        var syncAgent = Self.end(.responder, Fixture.bob, seed: 4)
        let hello = wrongPort.start(nowMs: Self.now)
        var refusal: Refusal?
        do { _ = try syncAgent.receive(hello, nowMs: Self.now) } catch { refusal = error }
        #expect(refusal?.detail == "this address serves KVGossip links, not KVGossip control connections: check the port")
        // The refusal goes back under the sync tag, and the control client reads it.
        let frame = LinkHandshake.refusalFrame(try #require(refusal), service: .sync)
        #expect { _ = try wrongPort.receive(frame, nowMs: Self.now) } throws: {
            ($0 as? Refusal)?.detail == "the peer refused the link: this address serves KVGossip links, not KVGossip control connections: check the port"
        }
        #expect(LinkHandshake.refusal(in: frame, service: .control)?.reason == .malformed)

        // A sync hello at the control listener, and a server hello signed for the other service.
        var control = Self.end(.responder, Fixture.bob, seed: 5, service: .control)
        var peer = Self.end(.initiator, Fixture.alice, seed: 6)
        #expect { _ = try control.receive(peer.start(nowMs: Self.now), nowMs: Self.now) } throws: {
            ($0 as? Refusal)?.detail.contains("serves KVGossip control connections, not KVGossip links") == true
        }
    }
}

/// Who may be a peer (Docs/contract.md §Admission).
@Suite struct AdmissionTests {
    let search = Fixture.validator().search

    func refusal(_ key: SigningKey, _ credential: [Grant], revoked: Set<Hash256> = [], at ms: UInt64 = Fixture.now) -> RefusalReason? {
        let identity = LinkIdentity(nodeKey: key.publicKey, name: "x", syncPort: 1, credential: credential, instance: [UInt8](repeating: 0, count: 16))
        return Admission.refusal(of: identity, search: search, nowMs: ms, isRevoked: revoked.contains)?.reason
    }

    @Test func whoIsAdmitted() {
        #expect(refusal(Fixture.root, []) == nil, "the root")
        let member = Fixture.grant(Fixture.root, to: Fixture.alice, [])
        #expect(member.patterns.isEmpty)
        #expect(refusal(Fixture.alice, [member]) == nil, "a membership grant: reads only")
        let writer = Fixture.grant(Fixture.root, to: Fixture.bob, ["/app/**"])
        #expect(refusal(Fixture.bob, [writer]) == nil, "a writer")
        let team = Fixture.grant(Fixture.root, to: Fixture.alice, [], delegate: true)
        let viaTeam = Fixture.grant(Fixture.alice, to: Fixture.carol, [])
        #expect(refusal(Fixture.carol, [viaTeam, team]) == nil, "through a delegate")
    }

    @Test func whoIsNot() {
        #expect(refusal(Fixture.mallory, []) == .noAuthority, "a stranger")
        let selfMade = Fixture.grant(Fixture.mallory, to: Fixture.carol, [])
        #expect(refusal(Fixture.carol, [selfMade]) == .noAuthority, "a credential from nobody")
        let member = Fixture.grant(Fixture.root, to: Fixture.alice, [])
        #expect(refusal(Fixture.alice, [member], revoked: [member.id]) == .revoked)
        let expiring = Fixture.grant(Fixture.root, to: Fixture.alice, [], expires: Fixture.now)
        #expect(refusal(Fixture.alice, [expiring]) == .expired)
        let notDelegate = Fixture.grant(Fixture.root, to: Fixture.alice, [])
        let onward = Fixture.grant(Fixture.alice, to: Fixture.carol, [])
        #expect(refusal(Fixture.carol, [onward, notDelegate]) == .noAuthority, "a member cannot admit others")
    }

    /// A node presents every chain it holds, membership first: when the peer has seen its write
    /// grant revoked, its membership grant still admits it, so it can learn the revocation.
    @Test func aCredentialCarriesEveryChainMembershipFirst() throws {
        let writer = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**"])
        let member = Fixture.grant(Fixture.root, to: Fixture.alice, [])
        let unrelated = Fixture.grant(Fixture.root, to: Fixture.bob, ["/x"])
        let credential = try #require(search.credential(
            of: Fixture.alice.publicKey, atMs: Fixture.now, pool: [writer, unrelated, member], isRevoked: { _ in false }, maxGrants: 8))
        #expect(credential.map(\.id) == [member.id, writer.id])
        #expect(refusal(Fixture.alice, credential, revoked: [writer.id]) == nil)
        #expect(refusal(Fixture.alice, credential, revoked: [writer.id, member.id]) == .revoked)
        #expect(search.credential(of: Fixture.alice.publicKey, atMs: Fixture.now, pool: [writer, member], isRevoked: { _ in false }, maxGrants: 1)?.map(\.id) == [member.id])
        #expect(search.credential(of: Fixture.root.publicKey, atMs: Fixture.now, pool: [], isRevoked: { _ in false }, maxGrants: 8) == [])
        #expect(search.credential(of: Fixture.carol.publicKey, atMs: Fixture.now, pool: [writer], isRevoked: { _ in false }, maxGrants: 8) == nil)
    }
}
