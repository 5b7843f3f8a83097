import Foundation
import KVGossipCore

/// A test's own end of a link (Docs/protocol.md §Links), built from the core's handshake and
/// message codec over a blocking socket: what an attacker holding a node key would run. It sends
/// whatever it is told, in any order, and reads what comes back.
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

    /// Connects to 127.0.0.1:`port` and runs the handshake as initiator with `credentials`.
    /// - Throws: ``Refused`` when the agent refuses (with its reason) or closes.
    public init(port: Int, cluster: PublicKey, credentials: LinkCredentials, secret: ClusterSecret? = nil, timeout: TimeInterval = 30) throws {
        guard let socket = RawSocket(tcpPort: port, timeout: timeout) else { throw Refused(refusal: nil) }
        self.socket = socket
        var machine = LinkHandshake(
            role: .initiator, cluster: cluster, credentials: credentials, secret: secret, ephemeral: .generate(),
            nonce: secureRandomBytes(LinkHandshake.nonceBytes))
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
        socket.sendFrame(sender.header)
        guard let header = socket.readFrame() else { throw Refused(refusal: nil) }
        if let refusal = LinkHandshake.refusal(in: header) { throw Refused(refusal: refusal) }
        guard let receiver = SecretStreamReceiver(key: established.receiveKey, header: header) else { throw Refused(refusal: nil) }
        self.sender = sender
        self.receiver = receiver
        peer = established.peer
    }

    /// Credentials for a speaker with a fresh instance id (any name and port).
    public static func credentials(_ key: SigningKey, grants: [Grant] = [], name: String = "speaker") -> LinkCredentials {
        LinkCredentials(signingKey: key, name: name, syncPort: 1, credential: grants, instance: secureRandomBytes(LinkIdentity.instanceBytes))
    }

    /// Sends one message on `session` (odd numbers are ours; 0 carries announcements).
    @discardableResult
    public func send(_ message: SyncMessage, session: UInt32 = 1) -> Bool {
        sendRaw(SyncMessageCodec.encode(message), session: session)
    }

    /// Sends arbitrary message bytes on `session`, sealed like any frame.
    @discardableResult
    public func sendRaw(_ message: [UInt8], session: UInt32 = 1) -> Bool {
        var w = ByteWriter(capacity: 4 + message.count)
        w.u32(session)
        w.fixed(message)
        return socket.sendFrame(sender.seal(w.bytes))
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
