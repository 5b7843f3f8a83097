import KVGossipCore
import KVGossipNet
import Logging
import NIOCore
import NIOPosix

/// One TCP connection's life as a link: the handshake (bounded by a deadline), the admission of the
/// peer, the stream headers, then the reader and the writer until either side closes.
enum LinkConnection {
    struct Context: Sendable {
        let cluster: PublicKey
        let credentials: LinkCredentials
        let options: LinkOptions
        /// Nil when the peer may be a peer; otherwise why not (`Admission`, against the node's
        /// current revocations and clock).
        let admit: @Sendable (LinkIdentity) -> Refusal?
        let logger: Logger
    }

    /// Runs the connection until it closes. `established` gets the link once both sides are
    /// authenticated and admitted; `inbound` gets the sessions and announcements the peer sends.
    static func run(
        _ channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>, role: LinkHandshake.Role, remoteHost: String, context: Context,
        vouched: @escaping @Sendable () -> Void = {},
        established: @escaping @Sendable (PeerLink) -> Void, inbound: @escaping @Sendable (PeerLink, PeerLink.Inbound) -> Void
    ) async throws {
        // A connection that has not finished its handshake by the deadline is closed: a stranger
        // (or a slow sender) holds its slot for that long at most.
        let underlying = channel.channel
        let deadline = underlying.eventLoop.scheduleTask(in: context.options.handshakeTimeout) { underlying.close(promise: nil) }
        try await channel.executeThenClose { frames, outbound in
            var iterator = frames.makeAsyncIterator()
            let (result, streamHeader) = try await handshake(role: role, frames: &iterator, outbound: outbound, context: context, vouched: vouched)
            if let refusal = context.admit(result.peer) {
                try? await outbound.write(ByteBuffer(bytes: LinkHandshake.refusalFrame(refusal)))
                throw LinkRefused(refusal: refusal, peer: result.peer)
            }
            // Each side's first frame after the handshake is its stream header: ours goes out
            // before we wait for theirs (each side waits only for the other's).
            let sender = SecretStreamSender(key: result.sendKey)
            try await outbound.write(ByteBuffer(bytes: sender.header))
            guard let headerFrame = try await iterator.next() else { throw SyncProtocolError("the peer closed the link before its stream header") }
            let headerBytes = Array(headerFrame.readableBytesView)
            if let refusal = LinkHandshake.refusal(in: headerBytes) { throw LinkRefused(refusal: refusal, peer: result.peer) }
            guard let receiver = SecretStreamReceiver(key: result.receiveKey, header: headerBytes) else {
                throw SyncProtocolError("the peer's stream header is malformed")
            }
            _ = streamHeader
            deadline.cancel()
            let (plaintext, writer) = AsyncStream.makeStream(of: [UInt8].self)
            let address = PeerAddress(host: remoteHost, port: Int(result.peer.syncPort))
            let link = PeerLink(
                peer: result.peer, address: address, initiatedHere: role == .initiator, peerClockOffsetMs: result.peerClockOffsetMs,
                options: context.options, writer: writer, logger: context.logger, disconnect: { underlying.close(promise: nil) })
            established(link)
            defer { link.close() }
            try await withThrowingTaskGroup(of: Void.self) { group in
                // The writer seals and sends in order; if it fails, the connection is closed, which
                // ends the reader below.
                group.addTask {
                    do {
                        for await frame in plaintext {
                            let sealed = sender.seal(frame)
                            link.bytesSent.add(sealed.count + 4, ordering: .relaxed)
                            try await outbound.write(ByteBuffer(bytes: sealed))
                        }
                        // The link was closed (`PeerLink.close`): what was queued is out, now the
                        // connection goes too.
                        underlying.close(promise: nil)
                    } catch {
                        underlying.close(promise: nil)
                    }
                }
                defer {
                    link.close()
                    group.cancelAll()
                }
                while let frame = try await iterator.next() {
                    link.bytesReceived.add(frame.readableBytes + 4, ordering: .relaxed)
                    guard let plain = receiver.open(Array(frame.readableBytesView)) else {
                        throw SyncProtocolError("a frame from \(result.peer.name) does not decrypt")
                    }
                    if let event = try link.route(plain) { inbound(link, event) }
                    await link.roomForMore()
                }
            }
        }
    }

    /// The three handshake frames, within the deadline; nothing else is read before it ends.
    /// `vouched` runs once the peer's first frame is a well-formed hello of this cluster.
    private static func handshake(
        role: LinkHandshake.Role, frames: inout NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator,
        outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>, context: Context, vouched: @Sendable () -> Void
    ) async throws -> (LinkHandshake.Established, [UInt8]) {
        var machine = LinkHandshake(
            role: role, cluster: context.cluster, credentials: context.credentials, secret: context.options.secret,
            ephemeral: .generate(), nonce: secureRandomBytes(LinkHandshake.nonceBytes), limits: context.options.limits)
        if role == .initiator { try await outbound.write(ByteBuffer(bytes: machine.start(nowMs: nowMs()))) }
        while true {
            guard let frame = try await frames.next() else {
                throw SyncProtocolError("the peer closed the connection during the handshake")
            }
            let step: LinkHandshake.Step
            do { step = try machine.receive(Array(frame.readableBytesView), nowMs: nowMs()) } catch {
                // Say why before closing, unless the peer is the one refusing.
                if !error.detail.hasPrefix("the peer refused the link") {
                    try? await outbound.write(ByteBuffer(bytes: LinkHandshake.refusalFrame(error)))
                }
                throw LinkRefused(refusal: error, peer: nil)
            }
            switch step {
            case .send(let bytes):
                vouched()
                try await outbound.write(ByteBuffer(bytes: bytes))
            case .established(let result, let last):
                if let last { try await outbound.write(ByteBuffer(bytes: last)) }
                return (result, [])
            }
        }
    }

    static func nowMs() -> UInt64 { UInt64(Int64(clock_gettime_ms())) }

    private static func clock_gettime_ms() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

/// A link that could not be established: the handshake failed or the peer is not admitted.
public struct LinkRefused: Error, CustomStringConvertible {
    public let refusal: Refusal
    public let peer: LinkIdentity?
    public var description: String { "link refused: \(refusal)" }
}
