import Foundation
import KVGossipCore
import NIOCore

/// A connection that finished the link handshake (Docs/protocol.md §Links): who the peer is, and
/// the two sealed streams, one per direction.
public struct OpenedLink {
    public let peer: LinkIdentity
    /// The peer's clock minus ours when its hello was read (network delay included).
    public let peerClockOffsetMs: Int64
    public let sender: SecretStreamSender
    public let receiver: SecretStreamReceiver
}

/// A connection that could not be opened: the handshake failed, or one side does not admit the other.
public struct LinkRefused: Error, CustomStringConvertible {
    public let refusal: Refusal
    /// Who the peer said it was, when the handshake got that far.
    public let peer: LinkIdentity?

    public init(refusal: Refusal, peer: LinkIdentity?) {
        self.refusal = refusal
        self.peer = peer
    }

    public var description: String { "link refused: \(refusal)" }
}

/// Moves the frames of `LinkHandshake` over a framed connection, then exchanges the stream headers.
/// Sync links and the TCP control listener open every connection here, so both authenticate,
/// admit and encrypt alike; the decisions are the handshake's and the caller's `admit`.
public enum LinkOpening {
    /// Runs `handshake` to its end and opens the streams. The caller bounds the time it may take.
    /// - Parameters:
    ///   - first: a frame the caller already read from the peer (a responder may look at it first).
    ///   - admit: nil when the peer may be served; otherwise why not. An initiator asks before it
    ///     sends its own identity, so a responder it does not admit never learns who called.
    ///   - vouched: runs once the peer's first frame is a well-formed hello.
    ///   - admitted: runs once the peer is authenticated and admitted, before this side sends the
    ///     frame that lets the peer go on: the moment to raise the connection's `FrameLimit`.
    /// - Throws: `LinkRefused` when either side refuses (the peer is told why, unless it is the one
    ///   refusing); `SyncProtocolError` when the peer closes midway.
    public static func open(
        _ handshake: LinkHandshake, first: [UInt8]? = nil,
        frames: inout NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>,
        admit: (LinkIdentity) -> Refusal?, vouched: () -> Void = {}, admitted: () -> Void = {}
    ) async throws -> OpenedLink {
        var machine = handshake
        let service = handshake.service
        func refused(_ refusal: Refusal, peer: LinkIdentity?) async -> LinkRefused {
            if !refusal.detail.hasPrefix("the peer refused the link") {
                try? await outbound.write(ByteBuffer(bytes: LinkHandshake.refusalFrame(refusal, service: service)))
            }
            return LinkRefused(refusal: refusal, peer: peer)
        }
        if machine.role == .initiator {
            do {
                try await outbound.write(ByteBuffer(bytes: machine.start(nowMs: nowMs())))
            } catch {
                // Something that is no peer may answer and hang up before our first frame goes out
                // (a web server's error page): what it sent (`FrameTooLarge` names its first bytes)
                // says more than "I/O on closed channel", so that error is thrown if there is one.
                _ = try await frames.next()
                throw error
            }
        }
        var unread = first
        var established: LinkHandshake.Established?
        while established == nil {
            let frame: [UInt8]
            if let waiting = unread {
                frame = waiting
                unread = nil
            } else {
                guard let next = try await frames.next() else { throw SyncProtocolError("the peer closed the connection during the handshake") }
                frame = Array(next.readableBytesView)
            }
            let step: LinkHandshake.Step
            do { step = try machine.receive(frame, nowMs: nowMs()) } catch { throw await refused(error, peer: nil) }
            switch step {
            case .send(let bytes):
                vouched()
                try await outbound.write(ByteBuffer(bytes: bytes))
            case .established(let result, let last):
                if let refusal = admit(result.peer) { throw await refused(refusal, peer: result.peer) }
                // A peer sends its first large frame only after our next frame (an initiator
                // after our stream header, a responder after our ClientAuth): raised now, the
                // limit is in place before any such frame can arrive.
                admitted()
                if let last { try await outbound.write(ByteBuffer(bytes: last)) }
                established = result
            }
        }
        let result = established!
        // Each side's first frame after the handshake is its stream header: ours goes out before
        // we wait for theirs (each side waits only for the other's).
        // A peer that refuses this side sends why and shuts its side, which may close the
        // connection under our header: what it said is still read, and is the better answer.
        let sender = SecretStreamSender(key: result.sendKey)
        var unsent: (any Error)?
        do { try await outbound.write(ByteBuffer(bytes: sender.header)) } catch { unsent = error }
        guard let headerFrame = try await frames.next() else {
            throw unsent ?? SyncProtocolError("the peer closed the connection before its stream header")
        }
        let header = Array(headerFrame.readableBytesView)
        if let refusal = LinkHandshake.refusal(in: header, service: service) { throw LinkRefused(refusal: refusal, peer: result.peer) }
        if let unsent { throw unsent }
        guard let receiver = SecretStreamReceiver(key: result.receiveKey, header: header) else {
            throw SyncProtocolError("the peer's stream header is malformed")
        }
        return OpenedLink(peer: result.peer, peerClockOffsetMs: result.peerClockOffsetMs, sender: sender, receiver: receiver)
    }

    /// The wall clock in Unix milliseconds, as handshakes carry it.
    public static func nowMs() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
    }
}
