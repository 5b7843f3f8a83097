import NIOCore

/// Splits the agent's byte stream into msgpack objects. Serf sends no length prefix, so the
/// objects themselves are the frames; a malformed or oversized one closes the connection.
struct MsgPackFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = MsgPackValue
    let decoder: MsgPackDecoder

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let outcome = try buffer.withUnsafeReadableBytes { (bytes) throws(MsgPackError) in try decoder.decode(bytes) }
        guard case .value(let value, let consumed) = outcome else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: consumed)
        context.fireChannelRead(wrapInboundOut(value))
        return .continue
    }
}

/// Hands decoded objects to the client and tells it when the connection ends.
final class SerfInboundHandler: ChannelInboundHandler {
    typealias InboundIn = MsgPackValue
    private let client: SerfRPCClient

    init(client: SerfRPCClient) {
        self.client = client
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        do {
            try client.receive(unwrapInboundIn(data))
        } catch {
            client.fail(error)
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let error = error as? MsgPackError {
            client.fail(.protocolViolation(error.description))
        } else {
            client.fail(.connectionClosed("\(error)"))
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        client.fail(.connectionClosed("the agent at \(client.address) closed the connection"))
        context.fireChannelInactive()
    }
}
