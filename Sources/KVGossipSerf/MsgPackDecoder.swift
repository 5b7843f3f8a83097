/// Decodes one msgpack value from the front of a buffer that may hold less (or more) than one value.
///
/// Decoding runs in two passes: a scan that walks the structure without allocating and decides
/// "complete", "need more data" or "malformed", then a build of the value. A peer announcing a
/// 4 GiB string therefore costs nothing until the bytes are actually there, and a value arriving in
/// many small reads is re-scanned cheaply rather than re-built.
public struct MsgPackDecoder: Sendable {
    /// Bounds that keep a hostile or broken peer from exhausting memory or the stack.
    public struct Limits: Sendable, Equatable {
        /// Largest string/binary length and largest array/map element count.
        public var maxLength: Int
        /// Deepest nesting of arrays and maps (the outermost container is level 1).
        public var maxDepth: Int
        /// Largest encoded size of one complete value.
        public var maxValueBytes: Int

        public init(maxLength: Int = 4 << 20, maxDepth: Int = 64, maxValueBytes: Int = 16 << 20) {
            self.maxLength = maxLength
            self.maxDepth = maxDepth
            self.maxValueBytes = maxValueBytes
        }
    }

    /// The result of one decode attempt.
    public enum Outcome: Sendable, Equatable {
        /// A complete value and the number of bytes it occupied.
        case value(MsgPackValue, consumed: Int)
        /// The bytes so far are a valid prefix; call again with more.
        case needMoreData
    }

    /// Bounds applied to every decode.
    public var limits: Limits

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// Decodes the value at the front of `bytes`; throws only when the bytes can never become valid.
    public func decode(_ bytes: UnsafeRawBufferPointer) throws(MsgPackError) -> Outcome {
        let reader = Reader(bytes: bytes, limits: limits)
        guard let end = try reader.scan(at: 0, depth: 0) else { return .needMoreData }
        var position = 0
        let value = try reader.build(at: &position)
        assert(position == end)
        return .value(value, consumed: end)
    }

    /// Decodes the value at the front of `bytes`.
    public func decode(_ bytes: [UInt8]) throws(MsgPackError) -> Outcome {
        try bytes.withUnsafeBytes { raw in Result { () throws(MsgPackError) in try decode(raw) } }.get()
    }

    /// Decodes every complete value in `bytes`; returns them and how many bytes they used.
    public func decodeAll(_ bytes: [UInt8]) throws(MsgPackError) -> (values: [MsgPackValue], consumed: Int) {
        var values: [MsgPackValue] = []
        var offset = 0
        while offset < bytes.count {
            let outcome = try bytes.withUnsafeBytes { raw in
                Result { () throws(MsgPackError) in try decode(UnsafeRawBufferPointer(rebasing: raw[offset...])) }
            }.get()
            guard case .value(let v, let n) = outcome else { break }
            values.append(v)
            offset += n
        }
        return (values, offset)
    }
}

/// The first bytes of a value: either a whole scalar, or a container/string header with its size.
private enum Head {
    case scalar(MsgPackValue)
    case string(Int)
    case binary(Int)
    case array(Int)
    case map(Int)
}

private struct Reader {
    let bytes: UnsafeRawBufferPointer
    let limits: MsgPackDecoder.Limits

    /// The end offset of the value at `offset`, or nil when the buffer stops before it does.
    func scan(at offset: Int, depth: Int) throws(MsgPackError) -> Int? {
        guard let (head, headLength) = try head(at: offset) else { return nil }
        var position = offset + headLength
        switch head {
        case .scalar:
            break
        case .string(let length), .binary(let length):
            position += length
            try checkSize(position)
            return position <= bytes.count ? position : nil
        case .array(let count), .map(let count):
            guard depth < limits.maxDepth else { throw .nestingLimitExceeded(limit: limits.maxDepth, offset: offset) }
            let elements = if case .map = head { count * 2 } else { count }
            for _ in 0 ..< elements {
                guard let end = try scan(at: position, depth: depth + 1) else { return nil }
                position = end
            }
        }
        try checkSize(position)
        return position
    }

    /// Builds the value at `position` (already scanned, so complete) and moves past it.
    func build(at position: inout Int) throws(MsgPackError) -> MsgPackValue {
        let start = position
        let (head, headLength) = try head(at: position)!
        position += headLength
        switch head {
        case .scalar(let value):
            return value
        case .string(let length):
            let slice = UnsafeRawBufferPointer(rebasing: bytes[position ..< position + length])
            position += length
            guard let text = String(validating: slice, as: UTF8.self) else { throw .invalidUTF8(offset: start) }
            return .string(text)
        case .binary(let length):
            defer { position += length }
            return .binary(Array(bytes[position ..< position + length]))
        case .array(let count):
            var elements: [MsgPackValue] = []
            elements.reserveCapacity(count)
            for _ in 0 ..< count { elements.append(try build(at: &position)) }
            return .array(elements)
        case .map(let count):
            var pairs: [(MsgPackValue, MsgPackValue)] = []
            pairs.reserveCapacity(count)
            for _ in 0 ..< count {
                let key = try build(at: &position)
                pairs.append((key, try build(at: &position)))
            }
            return .map(pairs)
        }
    }

    private func checkSize(_ end: Int) throws(MsgPackError) {
        if end > limits.maxValueBytes { throw .valueTooLarge(limit: limits.maxValueBytes) }
    }

    /// Reads the head at `offset`; nil when fewer bytes remain than the head needs.
    private func head(at offset: Int) throws(MsgPackError) -> (Head, Int)? {
        guard offset < bytes.count else { return nil }
        let type = bytes[offset]
        switch type {
        case 0x00 ... 0x7f: return (.scalar(.uint(UInt64(type))), 1)
        case 0x80 ... 0x8f: return (.map(Int(type & 0x0f)), 1)
        case 0x90 ... 0x9f: return (.array(Int(type & 0x0f)), 1)
        case 0xa0 ... 0xbf: return (.string(Int(type & 0x1f)), 1)
        case 0xc0: return (.scalar(.null), 1)
        case 0xc1: throw .reservedByte(offset: offset)
        case 0xc2: return (.scalar(.bool(false)), 1)
        case 0xc3: return (.scalar(.bool(true)), 1)
        case 0xc4, 0xc5, 0xc6: return try sized(offset, width: 1 << (type - 0xc4)) { .binary($0) }
        case 0xc7 ... 0xc9, 0xd4 ... 0xd8: throw .unsupportedExtension(typeByte: type, offset: offset)
        case 0xca:
            guard let bits = integer(at: offset + 1, width: 4) else { return nil }
            return (.scalar(.float(Float(bitPattern: UInt32(bits)))), 5)
        case 0xcb:
            guard let bits = integer(at: offset + 1, width: 8) else { return nil }
            return (.scalar(.double(Double(bitPattern: bits))), 9)
        case 0xcc ... 0xcf:
            let width = 1 << Int(type - 0xcc)
            guard let v = integer(at: offset + 1, width: width) else { return nil }
            return (.scalar(.uint(v)), 1 + width)
        case 0xd0 ... 0xd3:
            let width = 1 << Int(type - 0xd0)
            guard let v = integer(at: offset + 1, width: width) else { return nil }
            return (.scalar(.int(signExtend(v, width: width))), 1 + width)
        case 0xd9, 0xda, 0xdb: return try sized(offset, width: 1 << (type - 0xd9)) { .string($0) }
        case 0xdc, 0xdd: return try sized(offset, width: 2 << (type - 0xdc)) { .array($0) }
        case 0xde, 0xdf: return try sized(offset, width: 2 << (type - 0xde)) { .map($0) }
        default: return (.scalar(.int(Int64(Int8(bitPattern: type)))), 1)  // negative fixint 0xe0...0xff
        }
    }

    /// A head made of a type byte and a big-endian length, checked against the limit.
    private func sized(_ offset: Int, width: UInt8, _ make: (Int) -> Head) throws(MsgPackError) -> (Head, Int)? {
        guard let length = integer(at: offset + 1, width: Int(width)) else { return nil }
        guard length <= UInt64(limits.maxLength) else {
            throw .lengthLimitExceeded(length: length, limit: limits.maxLength, offset: offset)
        }
        return (make(Int(length)), 1 + Int(width))
    }

    private func integer(at offset: Int, width: Int) -> UInt64? {
        guard offset + width <= bytes.count else { return nil }
        var v: UInt64 = 0
        for i in 0 ..< width { v = v << 8 | UInt64(bytes[offset + i]) }
        return v
    }

    private func signExtend(_ v: UInt64, width: Int) -> Int64 {
        let shift = UInt64(64 - width * 8)
        return Int64(bitPattern: v << shift) >> Int64(shift)
    }
}
