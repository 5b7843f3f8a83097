import KVGossipCore
import NIOCore

/// Frames on KVGossip's TCP and Unix connections (control API and sync): a u32 big-endian
/// length, then that many bytes. A frame longer than the limit closes the connection (never the
/// agent).
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer
    public let maxFrameBytes: Int

    public init(maxFrameBytes: Int) { self.maxFrameBytes = maxFrameBytes }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        guard Int(length) <= maxFrameBytes else { throw FrameTooLarge(length: Int(length), limit: maxFrameBytes) }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: Int(length))!))
        return .continue
    }
}

public struct FrameTooLarge: Error, CustomStringConvertible {
    public let length: Int
    public let limit: Int
    public var description: String { "frame of \(length) bytes exceeds the \(limit)-byte limit" }
}

/// Prefixes each outbound buffer with its length.
public struct FrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = ByteBuffer

    public init() {}

    public func encode(data: ByteBuffer, out: inout ByteBuffer) throws {
        out.writeInteger(UInt32(data.readableBytes))
        out.writeImmutableBuffer(data)
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
        eventLoop.makeCompletedFuture {
            if let frameDeadline { try pipeline.syncOperations.addHandler(FrameDeadline(limit: frameDeadline)) }
            if let readTimeout {
                try pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: readTimeout))
                try pipeline.syncOperations.addHandler(CloseWhenIdle())
            }
            try pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameBytes: maxFrameBytes)))
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
