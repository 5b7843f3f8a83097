/// Reads what `ByteWriter` wrote, refusing short input, over-long fields and leftovers with a
/// `malformed` (or `too-large`) refusal instead of trapping: peers and files are untrusted.
public struct ByteReader: Sendable {
    private let bytes: [UInt8]
    public private(set) var offset: Int

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        self.offset = 0
    }

    public var remaining: Int { bytes.count - offset }
    public var isAtEnd: Bool { offset == bytes.count }

    public mutating func u8(_ what: String) throws(Refusal) -> UInt8 {
        try need(1, what)
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func u16(_ what: String) throws(Refusal) -> UInt16 { try integer(what) }
    public mutating func u32(_ what: String) throws(Refusal) -> UInt32 { try integer(what) }
    public mutating func u64(_ what: String) throws(Refusal) -> UInt64 { try integer(what) }

    public mutating func fixed(_ count: Int, _ what: String) throws(Refusal) -> [UInt8] {
        try need(count, what)
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    /// A u16-length field of at most `max` bytes.
    public mutating func short(_ what: String, max: Int) throws(Refusal) -> [UInt8] {
        let n = Int(try u16("\(what) length"))
        guard n <= max else { throw Refusal(.tooLarge, "\(what) is \(n) bytes, limit \(max)") }
        return try fixed(n, what)
    }

    /// A u32-length field of at most `max` bytes.
    public mutating func long(_ what: String, max: Int) throws(Refusal) -> [UInt8] {
        let n = Int(try u32("\(what) length"))
        guard n <= max else { throw Refusal(.tooLarge, "\(what) is \(n) bytes, limit \(max)") }
        return try fixed(n, what)
    }

    /// The bytes consumed so far, from `start`: used to recover the exact signed prefix of an object.
    public func consumed(since start: Int) -> [UInt8] { Array(bytes[start..<offset]) }

    public func expectEnd(_ what: String) throws(Refusal) {
        guard isAtEnd else { throw Refusal(.malformed, "\(remaining) unexpected trailing bytes after \(what)") }
    }

    private mutating func integer<T: FixedWidthInteger>(_ what: String) throws(Refusal) -> T {
        let size = MemoryLayout<T>.size
        try need(size, what)
        var v: T = 0
        for i in 0..<size { v = v << 8 | T(bytes[offset + i]) }
        offset += size
        return v
    }

    private func need(_ count: Int, _ what: String) throws(Refusal) {
        guard count >= 0, remaining >= count else {
            throw Refusal(.malformed, "truncated: \(what) needs \(count) bytes, \(remaining) left")
        }
    }
}
