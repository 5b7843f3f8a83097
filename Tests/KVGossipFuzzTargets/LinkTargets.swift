import KVGossipCore

/// What a stranger can send before anything is sealed (Docs/protocol.md §Links): the three handshake
/// frames and refusals, and the identity a peer presents, which decides whether it is admitted
/// (Docs/contract.md §Admission).
enum LinkTargets {
    /// One frame, given to each handshake state that reads one: a fresh responder (client hello), an
    /// initiator that has sent its hello (server hello) and a responder that has answered one
    /// (client auth). The ends are those of the protocol vector, fixed keys and clocks, with and
    /// without a cluster secret. A frame is accepted in one state at most (a hello never passes for
    /// another kind of frame: no echo, no reflection), and never when it is a refusal.
    static let handshake = FuzzTarget(
        "link-handshake", dictionary: ["kvgossip/link/v2\u{0}", "kvgossip/grant/v1\u{0}", "host-a", "no-authority"],
        seeds: { Ends.seedFrames }
    ) { input throws(Violation) in
        // The encoder side: a refusal arrives as a refusal, its sentence cut at most, never changed.
        let sentence = String(decoding: input, as: UTF8.self)
        guard let told = LinkHandshake.refusal(in: LinkHandshake.refusalFrame(Refusal(.noAuthority, sentence))) else {
            throw Violation(text: "a refusal frame is not read as a refusal")
        }
        let saying = Array("the peer refused the link: ".utf8)
        try require(told.reason == .noAuthority && told.detail.utf8.starts(with: saying), "a refusal frame is read as \(told)")
        try require(sentence.utf8.starts(with: told.detail.utf8.dropFirst(saying.count)), "a refusal's sentence arrives changed")

        let refusal = LinkHandshake.refusal(in: input)
        // A hello says in its flags whether a cluster secret is in use: the ends that agree read it.
        let ends = input.count > Ends.flagsOffset && input[Ends.flagsOffset] == 1 ? Ends.withSecret : Ends.plain
        var accepted: [String] = []
        var responder = ends.responder
        if case .send = try? responder.receive(input, nowMs: Ends.clock) { accepted.append("client hello") }
        var initiator = ends.initiator
        if let step = try? initiator.receive(input, nowMs: Ends.clock) {
            guard case .established(let link, send: .some) = step else { throw Violation(text: "a server hello established no link, or sent no auth") }
            try checkEstablished(link)
            accepted.append("server hello")
        }
        var answered = Ends.plain.answered
        if let step = try? answered.receive(input, nowMs: Ends.clock) {
            guard case .established(let link, send: nil) = step else { throw Violation(text: "a client auth was answered") }
            try checkEstablished(link)
            accepted.append("client auth")
        }
        try require(accepted.count <= 1, "one frame is accepted as \(accepted.joined(separator: " and as "))")
        try require(refusal == nil || accepted.isEmpty, "a refusal frame is accepted as \(accepted.joined())")
        return refusal != nil || !accepted.isEmpty
    }

    /// A peer's identity as a server hello or a client auth carries it, read alone; re-encoded to its
    /// bytes. Admission against the seeds' cluster, an hour after the seed grants start: a key is
    /// admitted only through a chain of grants of its own credential that runs from the root to it,
    /// and with that chain revoked only through another.
    static let identity = FuzzTarget(
        "link-identity", maxInputBytes: 8192, dictionary: SignedObjectTargets.patternTokens + ["host-a"],
        seeds: { seedIdentities().map(encoded) }
    ) { input throws(Violation) in
        // The encoder side: whatever a node is called, its identity reads back as itself.
        let name = String(decoding: input, as: UTF8.self)
        let own = LinkIdentity(nodeKey: Ends.writer.publicKey, name: name, syncPort: 7947, credential: [], instance: Ends.instanceA)
        let heard = try mustDecode("the identity of a node called \(name.debugDescription.prefix(40))") { () throws(Refusal) in
            try decode(encoded(own))
        }
        try require(heard == own, "an identity reads back as another")
        try require(name.utf8.starts(with: own.name.utf8), "a node's name is changed, not only cut")

        guard let identity = try? decode(input) else { return false }
        try require(encoded(identity) == input, "an identity re-encodes to different bytes")
        try require(identity.credential.count <= LinkIdentity.maxCredentialGrants, "a credential of \(identity.credential.count) grants was read")
        for grant in identity.credential { try SignedObjectTargets.checkGrant(grant, encoding: grant.encoded) }
        try checkAdmission(identity)
        return true
    }

    static func checkAdmission(_ identity: LinkIdentity) throws(Violation) {
        let root = SeedObjects.cluster
        let search = ChainSearch(root: root, cache: GrantVerificationCache())
        let now = admissionTime
        let verdict = Admission.refusal(of: identity, search: search, nowMs: now) { _ in false }
        try require(verdict?.reason != .revoked, "\(identity.nodeKey.fingerprint) is refused as revoked where nothing is")
        guard verdict == nil else { return }
        let member = { (revoked: Set<Hash256>) in
            search.membership(of: identity.nodeKey, atMs: now, pool: identity.credential) { revoked.contains($0) }
        }
        guard let chain = member([]) else { throw Violation(text: "\(identity.nodeKey.fingerprint) is admitted with no chain") }
        try SignedObjectTargets.checkLinks(chain, root: root, to: identity.nodeKey, atMs: now, lastDelegates: false)
        try require(chain.allSatisfy { grant in identity.credential.contains { $0.id == grant.id } }, "a chain uses a grant outside the credential")
        guard !chain.isEmpty else { return }
        let revoked = Set(chain.map(\.id))
        if Admission.refusal(of: identity, search: search, nowMs: now, isRevoked: { revoked.contains($0) }) == nil {
            guard let other = member(revoked) else { throw Violation(text: "admitted with its chain revoked, and no other chain") }
            try require(!other.contains { revoked.contains($0.id) }, "a revoked grant still admits \(identity.nodeKey.fingerprint)")
            try SignedObjectTargets.checkLinks(other, root: root, to: identity.nodeKey, atMs: now, lastDelegates: false)
        }
    }

    /// The seed grants are in force then (the team grant expires 90 days after they start).
    static let admissionTime = SeedObjects.notBefore + 3_600_000

    static func encoded(_ identity: LinkIdentity) -> [UInt8] {
        var w = ByteWriter()
        identity.write(to: &w)
        return w.bytes
    }

    static func decode(_ bytes: [UInt8]) throws(Refusal) -> LinkIdentity {
        var r = ByteReader(bytes)
        let identity = try LinkIdentity.read(from: &r, limits: .default)
        try r.expectEnd("identity")
        return identity
    }

    private static func checkEstablished(_ link: LinkHandshake.Established) throws(Violation) {
        try require(link.sendKey != link.receiveKey, "a link has one key for both directions: a reflected frame would decrypt")
        for grant in link.peer.credential { try SignedObjectTargets.checkGrant(grant, encoding: grant.encoded) }
    }

    /// The root alone; the writer with its grant; the writer by a chain of two; a member (no pattern);
    /// a stranger showing grants that are not its own.
    static func seedIdentities() -> [LinkIdentity] {
        let o = SeedObjects.self
        func identity(_ key: SigningKey, _ name: String, _ credential: [Grant]) -> LinkIdentity {
            LinkIdentity(nodeKey: key.publicKey, name: name, syncPort: 7947, credential: credential, instance: Ends.instanceA)
        }
        return [
            identity(o.root, "host-b", []),
            identity(o.writer, "host-a", [o.vectorGrant]),
            identity(o.writer, "host-a", [o.memberGrant, o.teamGrant, o.subGrant]),
            identity(o.member, "reader", [o.memberGrant]),
            identity(o.team, "", [o.vectorGrant, o.subGrant]),
        ]
    }

    /// Both ends of the link vector (Docs/protocol.md §Links), in each state a frame can reach.
    struct Ends {
        static let clock: UInt64 = 1_795_737_600_000
        /// Where a hello's flags are: after the 17-byte tag and the frame type.
        static let flagsOffset = 18
        static let instanceA = [UInt8](repeating: 0xA1, count: 16)
        static let writer = SeedObjects.writer

        /// Waiting for a client hello.
        let responder: LinkHandshake
        /// Has sent `clientHello`, waits for a server hello.
        let initiator: LinkHandshake
        /// Has answered `clientHello` with `serverHello`, waits for the client auth.
        let answered: LinkHandshake
        let frames: [[UInt8]]

        static let plain = Ends(secret: nil)
        static let withSecret = Ends(secret: ClusterSecret(text: Base64URL.encode([UInt8](repeating: 0x5E, count: 32)))!)

        /// Every handshake frame of both, and a refusal. The client auth is only the plain ends' (the
        /// ends with a secret only differ in their hellos).
        static var seedFrames: [[UInt8]] {
            plain.frames + withSecret.frames.prefix(2) + [LinkHandshake.refusalFrame(Refusal(.revoked, "the credential of host-a is revoked"))]
        }

        init(secret: ClusterSecret?) {
            let o = SeedObjects.self
            let a = LinkCredentials(signingKey: o.writer, name: "host-a", syncPort: 7947, credential: [o.vectorGrant], instance: Ends.instanceA)
            let b = LinkCredentials(signingKey: o.root, name: "host-b", syncPort: 7947, credential: [], instance: [UInt8](repeating: 0xB2, count: 16))
            func end(_ role: LinkHandshake.Role, _ credentials: LinkCredentials, seed: UInt8, nonce: UInt8) -> LinkHandshake {
                LinkHandshake(
                    role: role, cluster: o.cluster, credentials: credentials, secret: secret,
                    ephemeral: KeyExchangeKeyPair(seed: [UInt8](repeating: seed, count: 32)), nonce: [UInt8](repeating: nonce, count: 32))
            }
            var initiator = end(.initiator, a, seed: 0x11, nonce: 0x21)
            responder = end(.responder, b, seed: 0x12, nonce: 0x22)
            let hello = initiator.start(nowMs: Ends.clock)
            self.initiator = initiator
            var answered = responder
            guard case .send(let serverHello) = try! answered.receive(hello, nowMs: Ends.clock),
                case .established(_, let auth?) = try! initiator.receive(serverHello, nowMs: Ends.clock)
            else { fatalError("the link vector's ends do not complete a handshake") }
            self.answered = answered
            frames = [hello, serverHello, auth]
        }
    }
}
