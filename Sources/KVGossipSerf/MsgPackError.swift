/// Why a byte sequence is not acceptable msgpack. Offsets count from the start of the value.
public enum MsgPackError: Error, Equatable, Sendable, CustomStringConvertible {
    /// 0xc1 is reserved by the format: no encoder produces it, so the stream is not msgpack.
    case reservedByte(offset: Int)
    /// Extension types (fixext/ext): valid msgpack, but nothing this project talks to sends them.
    case unsupportedExtension(typeByte: UInt8, offset: Int)
    /// A string, binary, array or map header announcing more than the configured limit.
    case lengthLimitExceeded(length: UInt64, limit: Int, offset: Int)
    /// Arrays and maps nested deeper than the configured limit.
    case nestingLimitExceeded(limit: Int, offset: Int)
    /// The whole value would span more bytes than the configured limit.
    case valueTooLarge(limit: Int)
    /// A string whose bytes are not UTF-8.
    case invalidUTF8(offset: Int)

    public var description: String {
        switch self {
        case .reservedByte(let offset):
            "malformed msgpack: reserved type byte 0xc1 at offset \(offset)"
        case .unsupportedExtension(let byte, let offset):
            "unsupported msgpack extension type 0x\(String(byte, radix: 16)) at offset \(offset)"
        case .lengthLimitExceeded(let length, let limit, let offset):
            "msgpack length \(length) at offset \(offset) exceeds the limit of \(limit)"
        case .nestingLimitExceeded(let limit, let offset):
            "msgpack nesting deeper than \(limit) at offset \(offset)"
        case .valueTooLarge(let limit):
            "msgpack value larger than \(limit) bytes"
        case .invalidUTF8(let offset):
            "msgpack string at offset \(offset) is not UTF-8"
        }
    }
}
