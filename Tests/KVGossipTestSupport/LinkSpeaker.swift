import Foundation
import KVGossipCore

/// A test's own end of a link (Docs/protocol.md §Links), or of a TCP control connection, built
/// from the core's handshake and message codec over a blocking socket: what an attacker holding a
/// key would run. It sends whatever it is told, in any order, and reads what comes back.
public final class LinkSpeaker: @unchecked Sendable {
    public struct Refused: Error, CustomStringConvertible {
        public let refusal: Refusal?
        public var description: String { "link refused: \(refusal.map { "\($0)" } ?? "closed without a reason")" }
    }

    public let socket: RawSocket
    /// Who the agent said it is.
    public let peer: LinkIdentity
    private let sender: SecretStreamSender
    private let receiver: SecretStreamReceiver

    /// Connects to 127.0.0.1:`port` and runs the handshake as initiator with `credentials`; with
    /// `service: .control`, as a client of the TCP control listener (it checks nothing of the agent).
    /// A connection closed with no reason said (the agent's 5 s handshake deadline passed on a
    /// machine too busy to finish it, or its slot went to a newcomer) is tried again until
    /// `deadline`; a refusal with a reason is final.
    /// `withHeader` are messages sent in the same write as the stream header, before the agent's
    /// header is read: they reach the agent while its side of the handshake is still ending.
    /// - Throws: ``Refused`` when the agent refuses (with its reason) or keeps closing.
    public init(
        port: Int, cluster: PublicKey, credentials: LinkCredentials, secret: ClusterSecret? = nil, service: LinkHandshake.Service = .sync,
        timeout: TimeInterval = 30, from source: String? = nil, deadline: TimeInterval = 120,
        withHeader: [(session: UInt32, message: SyncMessage)] = []
    ) throws {
        let giveUp = Date().addingTimeInterval(deadline)
        var link: (RawSocket, LinkHandshake.Established, SecretStreamSender, SecretStreamReceiver)?
        while link == nil {
            do {
                link = try Self.handshake(
                    port: port, cluster: cluster, credentials: credentials, secret: secret, service: service, timeout: timeout, from: source,
                    withHeader: withHeader)
            } catch let refused as Refused where refused.refusal == nil && Date() < giveUp {
                usleep(100_000)  // the interval between attempts, not a wait for readiness
            }
        }
        let (socket, established, sender, receiver) = link!
        self.socket = socket
        self.sender = sender
        self.receiver = receiver
        peer = established.peer
    }

    /// The answering end: runs the handshake as responder on a connection a test's listener
    /// accepted (`fd`, borrowed: the listener closes it), as a node dialed by an agent would.
    /// - Throws: ``Refused`` when the dialer's frames do not make a link.
    public init(answering fd: Int32, cluster: PublicKey, credentials: LinkCredentials, timeout: TimeInterval = 30) throws {
        let socket = RawSocket(borrowing: fd, timeout: timeout)
        var machine = LinkHandshake(
            role: .responder, cluster: cluster, credentials: credentials, secret: nil, ephemeral: .generate(),
            nonce: secureRandomBytes(LinkHandshake.nonceBytes))
        var established: LinkHandshake.Established?
        do {
            while established == nil {
                guard let frame = socket.readFrame() else { throw Refused(refusal: nil) }
                switch try machine.receive(frame, nowMs: Self.nowMs()) {
                case .send(let reply): socket.sendFrame(reply)
                case .established(let result, let reply):
                    if let reply { socket.sendFrame(reply) }
                    established = result
                }
            }
        } catch let refusal as Refusal {
            throw Refused(refusal: refusal)
        }
        let sender = SecretStreamSender(key: established!.sendKey)
        socket.sendFrame(sender.header)
        guard let header = socket.readFrame(), let receiver = SecretStreamReceiver(key: established!.receiveKey, header: header) else {
            throw Refused(refusal: nil)
        }
        self.socket = socket
        self.sender = sender
        self.receiver = receiver
        peer = established!.peer
    }

    private static func handshake(
        port: Int, cluster: PublicKey, credentials: LinkCredentials, secret: ClusterSecret?, service: LinkHandshake.Service,
        timeout: TimeInterval, from source: String?, withHeader: [(session: UInt32, message: SyncMessage)]
    ) throws -> (RawSocket, LinkHandshake.Established, SecretStreamSender, SecretStreamReceiver) {
        guard let socket = RawSocket(tcpPort: port, timeout: timeout, from: source) else { throw Refused(refusal: nil) }
        var machine = LinkHandshake(
            role: .initiator, cluster: cluster, credentials: credentials, secret: secret, ephemeral: .generate(),
            nonce: secureRandomBytes(LinkHandshake.nonceBytes), service: service)
        socket.sendFrame(machine.start(nowMs: Self.nowMs()))
        guard let hello = socket.readFrame() else { throw Refused(refusal: nil) }
        let established: LinkHandshake.Established
        do {
            guard case .established(let result, let auth) = try machine.receive(hello, nowMs: Self.nowMs()) else {
                throw Refused(refusal: nil)
            }
            if let auth { socket.sendFrame(auth) }
            established = result
        } catch let refusal as Refusal {
            throw Refused(refusal: refusal)
        }
        let sender = SecretStreamSender(key: established.sendKey)
        socket.send(withHeader.reduce(RawSocket.frame(sender.header)) { $0 + RawSocket.frame(sender.seal(Self.body($1.message, session: $1.session))) })
        guard let header = socket.readFrame() else { throw Refused(refusal: nil) }
        if let refusal = LinkHandshake.refusal(in: header, service: service) { throw Refused(refusal: refusal) }
        guard let receiver = SecretStreamReceiver(key: established.receiveKey, header: header) else { throw Refused(refusal: nil) }
        return (socket, established, sender, receiver)
    }

    /// Credentials for a speaker with a fresh instance id (any name; the sync port it announces).
    public static func credentials(_ key: SigningKey, grants: [Grant] = [], name: String = "speaker", syncPort: UInt16 = 1) -> LinkCredentials {
        LinkCredentials(signingKey: key, name: name, syncPort: syncPort, credential: grants, instance: secureRandomBytes(LinkIdentity.instanceBytes))
    }

    /// Sends one message on `session` (odd numbers are ours; 0 carries announcements).
    @discardableResult
    public func send(_ message: SyncMessage, session: UInt32 = 1) -> Bool {
        sendRaw(SyncMessageCodec.encode(message), session: session)
    }

    /// Opens a full session on `session` and reads the answer: true when the agent opened it.
    public func openFullSession(session: UInt32 = 1) -> Bool {
        send(.open(.full, Hash256(bytes: secureRandomBytes(32))!), session: session)
        guard case .opened? = receive()?.message else { return false }
        return true
    }

    /// Pushes `records` on `session` (opening, records, then the answer): the agent's results,
    /// or nil when it answered otherwise or not at all (a message refused whole closes the link).
    public func push(_ records: [Record], session: UInt32 = 1) -> [PushResult]? {
        send(.open(.push, Hash256(bytes: secureRandomBytes(32))!), session: session)
        send(.records(records), session: session)
        guard case .results(let results)? = receive()?.message else { return nil }
        return results
    }

    /// Sends arbitrary message bytes on `session`, sealed like any frame.
    @discardableResult
    public func sendRaw(_ message: [UInt8], session: UInt32 = 1) -> Bool {
        socket.sendFrame(sender.seal(Self.body(message, session: session)))
    }

    /// A frame's body before it is sealed: the session number, then the message.
    static func body(_ message: [UInt8], session: UInt32) -> [UInt8] {
        var w = ByteWriter(capacity: 4 + message.count)
        w.u32(session)
        w.fixed(message)
        return w.bytes
    }

    public static func body(_ message: SyncMessage, session: UInt32) -> [UInt8] { body(SyncMessageCodec.encode(message), session: session) }

    /// Seals and sends one frame as it is (a control connection's JSON request).
    @discardableResult
    public func sendSealed(_ body: [UInt8]) -> Bool { socket.sendFrame(sender.seal(body)) }

    /// The next frame, opened (a control connection's JSON answer); nil when the agent closed the
    /// connection, said nothing before the socket's timeout, or sent a frame that does not open.
    public func receiveSealed() -> [UInt8]? {
        socket.readFrame(maxBytes: 64 << 20).flatMap { receiver.open($0) }
    }

    /// The next message on a session other than 0 (announcements are skipped); nil when the
    /// agent closed the link or said nothing before the socket's timeout.
    public func receive() -> (session: UInt32, message: SyncMessage)? {
        while let frame = socket.readFrame(maxBytes: 64 << 20) {
            guard let plain = receiver.open(frame), plain.count >= 4 else { return nil }
            let session = plain[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            if session == 0 { continue }
            guard let message = try? SyncMessageCodec.decode(Array(plain[4...])) else { return nil }
            return (session, message)
        }
        return nil
    }

    static func nowMs() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }
}
