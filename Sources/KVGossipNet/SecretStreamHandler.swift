import KVGossipCore
import NIOCore

/// Encrypts and authenticates every frame of a connection with the cluster secret. Each side
/// first sends its stream header as a frame of its own; a peer without the secret fails on its
/// first frame and the connection closes.
public final class SecretStreamHandler: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private let secret: ClusterSecret
    private let sender: SecretStreamSender
    private var receiver: SecretStreamReceiver?

    public init(secret: ClusterSecret) {
        self.secret = secret
        sender = SecretStreamSender(secret: secret)
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { sendHeader(context) }
    }

    public func channelActive(context: ChannelHandlerContext) {
        sendHeader(context)
        context.fireChannelActive()
    }

    private var headerSent = false

    private func sendHeader(_ context: ChannelHandlerContext) {
        guard !headerSent else { return }
        headerSent = true
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: sender.header)), promise: nil)
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Array(unwrapInboundIn(data).readableBytesView)
        guard let receiver else {
            guard let fresh = SecretStreamReceiver(secret: secret, header: frame) else { return fail(context) }
            receiver = fresh
            return
        }
        guard let plain = receiver.open(frame) else { return fail(context) }
        context.fireChannelRead(wrapInboundOut(ByteBuffer(bytes: plain)))
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let plain = Array(unwrapOutboundIn(data).readableBytesView)
        context.write(wrapOutboundOut(ByteBuffer(bytes: sender.seal(plain))), promise: promise)
    }

    private func fail(_ context: ChannelHandlerContext) {
        context.fireErrorCaught(SecretStreamRejected())
        context.close(promise: nil)
    }
}

public struct SecretStreamRejected: Error, CustomStringConvertible {
    public var description: String { "the peer does not hold this cluster's secret (or the stream was tampered with)" }
}
