import NIOCore

/// Frames on the control connection: a u32 big-endian length, then that many bytes of JSON.
/// A frame longer than the limit closes the connection (never the agent).
struct ControlFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    let maxFrameBytes: Int

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        guard Int(length) <= maxFrameBytes else { throw ControlFrameTooLarge(length: Int(length), limit: maxFrameBytes) }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: Int(length))!))
        return .continue
    }
}

struct ControlFrameTooLarge: Error, CustomStringConvertible {
    let length: Int
    let limit: Int
    var description: String { "control frame of \(length) bytes exceeds the \(limit)-byte limit" }
}

/// Prefixes each outbound buffer with its length.
struct ControlFrameEncoder: MessageToByteEncoder {
    typealias OutboundIn = ByteBuffer

    func encode(data: ByteBuffer, out: inout ByteBuffer) throws {
        out.writeInteger(UInt32(data.readableBytes))
        out.writeImmutableBuffer(data)
    }
}

/// Where a control endpoint lives: a Unix socket path or `host:port`.
public enum ControlEndpoint: Sendable, Equatable, CustomStringConvertible {
    case unix(String)
    case tcp(host: String, port: Int)

    /// `host:port` (with a numeric port) is TCP; anything else is a socket path.
    public init(parsing text: String) {
        if !text.contains("/"), let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) {
            self = .tcp(host: String(text[..<colon]), port: port)
        } else {
            self = .unix(text)
        }
    }

    public var description: String {
        switch self {
        case .unix(let path): path
        case .tcp(let host, let port): "\(host):\(port)"
        }
    }

    public static let defaultSocketPath = "/run/kvgossip/control.sock"
}
