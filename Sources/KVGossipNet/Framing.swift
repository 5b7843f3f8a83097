import KVGossipCore
import NIOCore
import Synchronization

/// Frames on KVGossip's TCP and Unix connections (control API and sync): a u32 big-endian
/// length, then that many bytes. A frame longer than the limit closes the connection (never the
/// agent).
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer
    public let limit: FrameLimit

    public init(limit: FrameLimit) { self.limit = limit }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        let maxFrameBytes = limit.bytes
        guard Int(length) <= maxFrameBytes else { throw FrameTooLarge(length: Int(length), limit: maxFrameBytes) }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: Int(length))!))
        return .continue
    }
}

/// The largest frame a connection takes now. A connection that opens with a handshake starts with
/// a limit that fits the handshake's frames and is raised once the peer is admitted, so a stranger
/// can make this node buffer a few hundred KiB per connection, not a whole message's megabytes
/// (Docs/security.md §Peers and links).
public final class FrameLimit: Sendable {
    private let current: Atomic<Int>

    public init(_ bytes: Int) { current = Atomic(bytes) }

    public var bytes: Int { current.load(ordering: .acquiring) }

    /// Takes effect for the next frame whose length the decoder reads. Raise before sending the
    /// frame that lets the peer go on, so no frame it may send after is judged by the old limit.
    public func raise(to bytes: Int) { current.store(bytes, ordering: .releasing) }
}

/// A connection a listener accepted, with the frame limit its handshake raises.
public struct FramedConnection: AcceptedConnection {
    public let connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>
    public let frameLimit: FrameLimit

    public init(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, frameLimit: FrameLimit) {
        self.connection = connection
        self.frameLimit = frameLimit
    }

    public var channel: any Channel { connection.channel }
    public func closeUnserved() async { await connection.closeUnserved() }
}

public struct FrameTooLarge: Error, CustomStringConvertible {
    public let length: Int
    public let limit: Int
    public var description: String {
        // A length whose four bytes are printable text is most often another protocol's first
        // words (an HTTP server answers "HTTP"): worth saying, since the number alone means nothing.
        let bytes = withUnsafeBytes(of: UInt32(truncatingIfNeeded: length).bigEndian, Array.init)
        let text = bytes.allSatisfy { (0x20...0x7E).contains($0) } ? String(decoding: bytes, as: UTF8.self) : nil
        return "frame of \(length) bytes exceeds the \(limit)-byte limit"
            + (text.map { " (its first bytes read \"\($0)\": not a KVGossip peer or client?)" } ?? "")
    }
}

/// Prefixes each outbound buffer with its length.
public struct FrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = ByteBuffer

    public init() {}

    public func encode(data: ByteBuffer, out: inout ByteBuffer) throws {
        out.writeInteger(UInt32(data.readableBytes))
        out.writeImmutableBuffer(data)
    }

    /// Appends `body` to `out` framed as `encode` frames it, for bytes written past the pipeline
    /// (`SocketDuplicate`).
    public static func append(_ body: [UInt8], to out: inout ByteBuffer) {
        out.writeInteger(UInt32(body.count))
        out.writeBytes(body)
    }
}

extension Channel {
    /// Adds the frame codec and wraps the channel for async use; every KVGossip connection starts
    /// so. With `readTimeout`, a peer that goes quiet that long has its connection closed, which
    /// ends the reader's loop instead of leaving it waiting forever. With `frameDeadline`, a peer
    /// that takes that long to finish a frame it began is closed (`FrameDeadline`). With `secret`,
    /// every frame is sealed with the cluster secret. `inboundFrames` is how many received frames
    /// may wait for the reader before the connection stops reading (NIO's default, 10, when nil).
    public func framedAsyncChannel(
        maxFrameBytes: Int, readTimeout: TimeAmount? = nil, frameDeadline: TimeAmount? = nil, inboundFrames: Int? = nil,
        secret: ClusterSecret? = nil
    ) -> EventLoopFuture<NIOAsyncChannel<ByteBuffer, ByteBuffer>> {
        framedAsyncChannel(
            frameLimit: FrameLimit(maxFrameBytes), readTimeout: readTimeout, frameDeadline: frameDeadline, inboundFrames: inboundFrames,
            secret: secret)
    }

    /// The same, with a limit its owner may raise later (`FrameLimit`).
    public func framedAsyncChannel(
        frameLimit: FrameLimit, readTimeout: TimeAmount? = nil, frameDeadline: TimeAmount? = nil, inboundFrames: Int? = nil,
        secret: ClusterSecret? = nil
    ) -> EventLoopFuture<NIOAsyncChannel<ByteBuffer, ByteBuffer>> {
        eventLoop.makeCompletedFuture {
            if let frameDeadline { try pipeline.syncOperations.addHandler(FrameDeadline(limit: frameDeadline)) }
            if let readTimeout {
                try pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: readTimeout))
                try pipeline.syncOperations.addHandler(CloseWhenIdle())
            }
            try pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(limit: frameLimit)))
            try pipeline.syncOperations.addHandler(MessageToByteHandler(FrameEncoder()))
            if let secret { try pipeline.syncOperations.addHandler(SecretStreamHandler(secret: secret)) }
            guard let inboundFrames else { return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: self) }
            let backPressure = NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark(
                lowWatermark: max(1, inboundFrames / 2), highWatermark: max(1, inboundFrames))
            return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                wrappingChannelSynchronously: self, configuration: .init(backPressureStrategy: backPressure))
        }
    }
}

/// Closes the connection when `IdleStateHandler` reports that nothing was read for too long.
public final class CloseWhenIdle: ChannelInboundHandler, Sendable {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer

    public init() {}

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
