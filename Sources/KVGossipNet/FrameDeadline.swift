import NIOCore

/// Where a byte stream of frames (`u32` big-endian length, then the bytes) stands after each chunk:
/// between frames, or inside one, and whether the frame it is inside began in the last chunk.
/// Pure, so the deadline rule below can be tested without a socket.
public struct FrameProgress: Sendable, Equatable {
    /// Header bytes of the current frame seen so far (0 to 3), and its length once all 4 are in.
    private var headerBytes = 0
    private var length: UInt32 = 0
    /// Body bytes of the current frame still to come; nil while reading a header.
    private var remaining: Int?

    public init() {}

    /// Whether the stream ends inside a frame.
    public var isInsideFrame: Bool { headerBytes > 0 || remaining != nil }

    /// Reads one chunk; returns true when the stream now ends inside a frame that began in it.
    public mutating func consume(_ bytes: some Collection<UInt8>) -> Bool {
        var startedHere = false
        var index = bytes.startIndex
        while index != bytes.endIndex {
            if let left = remaining {
                let take = min(left, bytes.distance(from: index, to: bytes.endIndex))
                index = bytes.index(index, offsetBy: take)
                remaining = left - take == 0 ? nil : left - take
                continue
            }
            if headerBytes == 0 {
                startedHere = true
                length = 0
            }
            length = length << 8 | UInt32(bytes[index])
            headerBytes += 1
            index = bytes.index(after: index)
            if headerBytes == 4 {
                headerBytes = 0
                remaining = length == 0 ? nil : Int(length)
            }
        }
        return startedHere && isInsideFrame
    }
}

/// Closes a connection whose peer takes longer than `limit` to send a frame, counted from the
/// frame's first byte. A peer that is idle between frames is not affected; one that starts a frame
/// and stalls (to hold the connection and the partial buffer) is. Time the connection spends not
/// reading because its own reader is behind (back-pressure) is not held against the peer: the
/// deadline is checked again a `limit` later instead.
public final class FrameDeadline: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    let limit: TimeAmount
    private var progress = FrameProgress()
    private var timer: Scheduled<Void>?
    /// Whether the pipeline asked for more bytes since the last read cycle ended.
    private var reading = true

    public init(limit: TimeAmount) { self.limit = limit }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let restarted = progress.consume(buffer.readableBytesView)
        if !progress.isInsideFrame {
            timer?.cancel()
            timer = nil
        } else if restarted || timer == nil {
            arm(context)
        }
        context.fireChannelRead(data)
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        reading = false
        context.fireChannelReadComplete()
    }

    public func read(context: ChannelHandlerContext) {
        reading = true
        context.read()
    }

    private func arm(_ context: ChannelHandlerContext) {
        timer?.cancel()
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: limit) { [self, context] in
            if reading { context.close(promise: nil) } else { arm(context) }
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }
}
