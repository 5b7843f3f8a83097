/// The opening of a link between two nodes (Docs/protocol.md §Links): three frames that prove each
/// side holds its node key, agree on fresh keys for this connection only, and tell each side who
/// the other is. Frames in, frames out; no I/O, no clock, no randomness of its own. The same three
/// frames open the TCP control listener's connections, under a tag of their own (`Service`).
///
/// ```
/// initiator                                  responder
///   ClientHello(cluster, kx key, nonce, clock) →
///                    ← ServerHello(cluster, kx key, nonce, clock, identity, signature)
///   ClientAuth(identity, signature) →
///   (both) stream header, then sealed frames
/// ```
///
/// Each signature covers a hash of everything sent so far in both directions, so a hello recorded
/// on one connection proves nothing on another (the other side's ephemeral key and nonce differ),
/// a reflected hello has the wrong type, and a man in the middle cannot swap a key unseen. The
/// stream keys come from the ephemeral key exchange (one per direction), the transcript, and the
/// cluster secret when one is configured.
public struct LinkHandshake: Sendable {
    public enum Role: Sendable { case initiator, responder }

    /// What a finished handshake yields.
    public struct Established: Sendable {
        public let peer: LinkIdentity
        /// The peer's clock minus ours when its hello was read (network delay included).
        public let peerClockOffsetMs: Int64
        public let sendKey: [UInt8]
        public let receiveKey: [UInt8]
    }

    public enum Step: Sendable {
        /// Send this frame and wait for the next one.
        case send([UInt8])
        /// The handshake is over (after sending `frame`, if any).
        case established(Established, send: [UInt8]?)
    }

    /// The sync protocol version this build speaks (in the link tag; `kvgossip --version` shows it).
    public static let protocolVersion = 2
    public static let nonceBytes = 32
    /// The largest frame either side sends before the streams open: a server hello with the
    /// largest identity (a longest tag, type, flags, cluster, kx key, nonce, clock, MAC, identity,
    /// signature). Refusals and stream headers are far smaller. A connection reads no larger frame
    /// until its peer is admitted.
    public static let maxFrameBytes = 32 + 1 + 1 + 32 + 32 + nonceBytes + 8 + 32 + LinkIdentity.maxEncodedBytes + 64

    /// What the connection is for. Each service has its own tag, and every signature and stream
    /// key is bound to it, so a handshake meant for one service is refused by the other at its
    /// first frame (a client that dialled a sync port is told so) and proves nothing there.
    public enum Service: Sendable, CaseIterable {
        /// A link between two nodes (Docs/protocol.md §Links).
        case sync
        /// A client of the TCP control listener (Docs/protocol.md §Control over TCP).
        case control

        var name: String {
            switch self {
            case .sync: "kvgossip/link/v\(LinkHandshake.protocolVersion)"
            case .control: "kvgossip/control/v1"
            }
        }

        /// What a connection of this service is, in refusals.
        var what: String {
            switch self {
            case .sync: "KVGossip link"
            case .control: "KVGossip control connection"
            }
        }

        var tag: [UInt8] { context("") }

        /// `name/part` NUL: the domain of one signature, key or MAC of this service.
        func context(_ part: String) -> [UInt8] { Array("\(name)\(part.isEmpty ? "" : "/\(part)")\u{0}".utf8) }
    }

    static let tag = Service.sync.tag

    enum Kind: UInt8 {
        case clientHello = 1, serverHello = 2, clientAuth = 3, refusal = 4
    }

    /// The frame a side sends instead of its next one when it refuses the link: tag, type 4, the
    /// reason code and a sentence, so the other side can say why rather than only "closed".
    public static func refusalFrame(_ refusal: Refusal, service: Service = .sync) -> [UInt8] {
        var w = ByteWriter(capacity: 200)
        w.fixed(service.tag)
        w.u8(Kind.refusal.rawValue)
        w.short(Array(refusal.reason.rawValue.utf8))
        w.shortText(refusal.detail, maxBytes: 1000)
        return w.bytes
    }

    enum Phase: Sendable { case start, awaitingServerHello, awaitingClientHello, awaitingClientAuth, done }

    public let role: Role
    public let service: Service
    let cluster: PublicKey
    let credentials: LinkCredentials
    let secret: ClusterSecret?
    let ephemeral: KeyExchangeKeyPair
    let nonce: [UInt8]
    let limits: Limits
    private var phase: Phase
    /// Every frame so far, in order: what the signatures and the stream keys bind to.
    private var transcript: [UInt8] = []
    private var peerKX: [UInt8] = []
    private var peerClockOffsetMs: Int64 = 0
    private var peerIdentity: LinkIdentity?

    /// - Parameters:
    ///   - ephemeral, nonce: fresh for every connection (`KeyExchangeKeyPair.generate()`,
    ///     `secureRandomBytes(32)`); fixed only in protocol vectors.
    public init(
        role: Role, cluster: PublicKey, credentials: LinkCredentials, secret: ClusterSecret?,
        ephemeral: KeyExchangeKeyPair, nonce: [UInt8], limits: Limits = .default, service: Service = .sync
    ) {
        precondition(nonce.count == LinkHandshake.nonceBytes, "a handshake nonce is 32 bytes")
        self.role = role
        self.service = service
        self.cluster = cluster
        self.credentials = credentials
        self.secret = secret
        self.ephemeral = ephemeral
        self.nonce = nonce
        self.limits = limits
        phase = role == .initiator ? .start : .awaitingClientHello
    }

    /// The initiator's first frame.
    public mutating func start(nowMs: UInt64) -> [UInt8] {
        precondition(role == .initiator && phase == .start, "only an initiator starts, once")
        let hello = helloFrame(.clientHello, nowMs: nowMs)
        transcript = hello
        phase = .awaitingServerHello
        return hello
    }

    /// Handles the peer's next frame. Throws a refusal that says what was wrong; the connection
    /// then closes (the shell may send the reason first).
    public mutating func receive(_ frame: [UInt8], nowMs: UInt64) throws(Refusal) -> Step {
        switch phase {
        case .awaitingClientHello:
            try readHello(frame, expecting: .clientHello, nowMs: nowMs)
            transcript = frame
            var w = ByteWriter(capacity: 600)
            w.fixed(helloFrame(.serverHello, nowMs: nowMs))
            credentials.identity.write(to: &w)
            let unsigned = w.bytes
            let serverHello = unsigned + credentials.signingKey.sign(signed(unsigned, by: .responder)).bytes
            transcript += serverHello
            phase = .awaitingClientAuth
            return .send(serverHello)

        case .awaitingServerHello:
            var r = try readHello(frame, expecting: .serverHello, nowMs: nowMs)
            let identity = try acceptSigned(frame, &r, by: .responder, frameName: "server hello", peersFrame: "hello")
            var w = ByteWriter(capacity: 600)
            w.fixed(service.tag)
            w.u8(Kind.clientAuth.rawValue)
            credentials.identity.write(to: &w)
            let unsigned = w.bytes
            let auth = unsigned + credentials.signingKey.sign(signed(unsigned, by: .initiator)).bytes
            transcript += auth
            phase = .done
            return .established(try established(identity), send: auth)

        case .awaitingClientAuth:
            var r = ByteReader(frame)
            try Self.readTag(&r, expecting: .clientAuth, service: service)
            let identity = try acceptSigned(frame, &r, by: .initiator, frameName: "client auth", peersFrame: "authentication")
            phase = .done
            return .established(try established(identity), send: nil)

        case .start, .done:
            throw Refusal(.malformed, "no handshake frame is expected now")
        }
    }

    // MARK: Frames

    /// tag, type, flags (bit 0: a cluster secret is in use), cluster, kx key, nonce, clock, and with
    /// a secret a MAC over all that keyed by it, so only holders of the secret get an answer.
    private func helloFrame(_ kind: Kind, nowMs: UInt64) -> [UInt8] {
        var w = ByteWriter(capacity: 160)
        w.fixed(service.tag)
        w.u8(kind.rawValue)
        w.u8(secret == nil ? 0 : 1)
        w.fixed(cluster.bytes)
        w.fixed(ephemeral.publicKey)
        w.fixed(nonce)
        w.u64(nowMs)
        if let secret { w.fixed(helloMAC(w.bytes, secret: secret)) }
        return w.bytes
    }

    func helloMAC(_ bytes: [UInt8], secret: ClusterSecret) -> [UInt8] {
        keyedHash256(key: secret.key, service.context("hello-mac") + bytes)
    }

    /// Reads a hello up to its end (a client hello) or up to the identity (a server hello).
    @discardableResult
    private mutating func readHello(_ frame: [UInt8], expecting kind: Kind, nowMs: UInt64) throws(Refusal) -> ByteReader {
        var r = ByteReader(frame)
        try Self.readTag(&r, expecting: kind, service: service)
        let flags = try r.u8("hello flags")
        guard flags <= 1 else { throw Refusal(.malformed, "unknown hello flags \(flags)") }
        let theirCluster = try r.publicKey("cluster")
        let kx = try r.fixed(KeyExchangeKeyPair.publicKeyBytes, "key exchange key")
        _ = try r.fixed(Self.nonceBytes, "nonce")
        let clock = try r.u64("clock")
        switch (flags == 1, secret) {
        case (true, nil):
            throw Refusal(.noAuthority, "the peer uses a cluster secret and this node has none configured")
        case (false, .some):
            throw Refusal(.noAuthority, "this node requires the cluster secret and the peer does not use one")
        case (true, .some(let secret)):
            let covered = Array(frame[..<r.offset])
            let mac = try r.fixed(32, "hello MAC")
            guard mac == helloMAC(covered, secret: secret) else {
                throw Refusal(.noAuthority, "the peer's cluster secret differs from this node's")
            }
        case (false, nil):
            break
        }
        guard theirCluster == cluster else {
            throw Refusal(.noAuthority, "different cluster: peer root \(theirCluster.fingerprint), this node's root \(cluster.fingerprint)")
        }
        guard kx != ephemeral.publicKey else {
            throw Refusal(.malformed, "the peer sent back this connection's own key: a reflection")
        }
        if kind == .clientHello { try r.expectEnd("client hello") }
        peerKX = kx
        peerClockOffsetMs = Int64(bitPattern: clock &- nowMs)
        return r
    }

    /// The refusal a frame carries, if it is a refusal frame (one may arrive where a stream header
    /// was expected: the peer declined to admit this node).
    public static func refusal(in frame: [UInt8], service: Service = .sync) -> Refusal? {
        var r = ByteReader(frame)
        do {
            try readTag(&r, expecting: .clientHello, service: service)
            return nil
        } catch {
            return error.detail.hasPrefix("the peer refused the link") ? error : nil
        }
    }

    /// Reads the tag and the frame type. A refusal is read under any service's tag: a side that
    /// reached the wrong service is told so in that service's frame.
    private static func readTag(_ r: inout ByteReader, expecting kind: Kind, service: Service) throws(Refusal) {
        var other: Service?
        for candidate in Service.allCases where candidate != service {
            var peek = r
            if (try? peek.fixed(candidate.tag.count, "link tag")) == candidate.tag { other = candidate }
        }
        var peek = r
        guard other != nil || (try? peek.fixed(service.tag.count, "link tag")) == service.tag else {
            throw Refusal(.malformed, "not a \(service.what) (or another protocol version): the first bytes are not \"\(service.name)\"")
        }
        _ = try r.fixed((other ?? service).tag.count, "link tag")
        let raw = try r.u8("frame type")
        if let other, raw != Kind.refusal.rawValue {
            throw Refusal(.malformed, "this address serves \(service.what)s, not \(other.what)s: check the port")
        }
        if raw == Kind.refusal.rawValue {
            let reason = RefusalReason(rawValue: String(decoding: try r.short("refusal reason", max: 64), as: UTF8.self)) ?? .malformed
            let detail = String(decoding: try r.short("refusal detail", max: 4096), as: UTF8.self)
            throw Refusal(reason, "the peer refused the link: \(detail)")
        }
        guard raw == kind.rawValue else {
            if raw == Kind.clientHello.rawValue {
                throw Refusal(.malformed, "the peer answered with a client hello: an echo or a reflection of this node's own frame")
            }
            throw Refusal(.malformed, "expected handshake frame \(kind.rawValue), got \(raw)")
        }
    }

    /// What a side signs for `signer`'s frame: the service's context for that role, then a hash of
    /// the transcript so far and the frame's unsigned part, binding the signature to this connection.
    private func signed(_ unsigned: [UInt8], by signer: Role) -> [UInt8] {
        service.context(signer == .initiator ? "initiator" : "responder") + Hash256.of(transcript + unsigned).bytes
    }

    /// Reads the rest of the peer's signed frame (`r` is at its identity): the identity, then a
    /// signature by the node key it names over what `signed` covers, then the end. A frame that
    /// passes, and is not from this node itself, joins the transcript and names the peer.
    private mutating func acceptSigned(
        _ frame: [UInt8], _ r: inout ByteReader, by signer: Role, frameName: String, peersFrame: String
    ) throws(Refusal) -> LinkIdentity {
        let identity = try LinkIdentity.read(from: &r, limits: limits)
        let signedPart = Array(frame[..<r.offset])
        let signature = try r.signature("\(frameName) signature")
        try r.expectEnd(frameName)
        guard identity.nodeKey.verifies(signature, over: signed(signedPart, by: signer)) else {
            throw Refusal(.badSignature, "the peer's \(peersFrame) is not signed by the node key it names (\(identity.nodeKey.fingerprint))")
        }
        try checkNotSelf(identity)
        transcript += frame
        peerIdentity = identity
        return identity
    }

    private func checkNotSelf(_ identity: LinkIdentity) throws(Refusal) {
        guard identity.instance != credentials.identity.instance else {
            throw Refusal(.malformed, "the peer is this node itself (its address leads back here)")
        }
    }

    private func established(_ peer: LinkIdentity) throws(Refusal) -> Established {
        guard let (rx, tx) = ephemeral.sessionKeys(peer: peerKX, asInitiator: role == .initiator) else {
            throw Refusal(.malformed, "the peer's key exchange key is unacceptable")
        }
        let context = service.context("stream") + Hash256.of(transcript).bytes + (secret?.key ?? [])
        return Established(
            peer: peer, peerClockOffsetMs: peerClockOffsetMs,
            sendKey: keyedHash256(key: tx, context), receiveKey: keyedHash256(key: rx, context))
    }
}
