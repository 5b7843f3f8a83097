/// Appends fixed-width big-endian integers and length-prefixed fields: the only way canonical
/// encodings are produced, so every object uses the same widths.
public struct ByteWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 128) { bytes.reserveCapacity(capacity) }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u16(_ v: UInt16) { append(v) }
    public mutating func u32(_ v: UInt32) { append(v) }
    public mutating func u64(_ v: UInt64) { append(v) }

    /// Raw bytes whose length is fixed by the format (keys, hashes, signatures, nonces).
    public mutating func fixed(_ b: [UInt8]) { bytes.append(contentsOf: b) }

    /// A short field (≤ 65535 bytes) with a u16 length.
    public mutating func short(_ b: [UInt8]) {
        precondition(b.count <= Int(UInt16.max), "short field too long")
        u16(UInt16(b.count))
        bytes.append(contentsOf: b)
    }

    /// A short field holding at most `maxBytes` of `text`'s UTF-8, cut between code points rather
    /// than inside one, so the field stays valid UTF-8 (a cut inside a code point reached peers as
    /// U+FFFD, or as a field they refuse; caught by the sync and tree-hash fuzz targets).
    public mutating func shortText(_ text: String, maxBytes: Int) {
        var utf8 = Array(text.utf8)
        if utf8.count > maxBytes {
            var cut = maxBytes
            while cut > 0 && utf8[cut] & 0xC0 == 0x80 { cut -= 1 }  // 10xxxxxx continues a code point
            utf8.removeSubrange(cut...)
        }
        short(utf8)
    }

    /// A long field with a u32 length.
    public mutating func long(_ b: [UInt8]) {
        precondition(b.count <= Int(UInt32.max), "long field too long")
        u32(UInt32(b.count))
        bytes.append(contentsOf: b)
    }

    private mutating func append<T: FixedWidthInteger>(_ v: T) {
        var be = v.bigEndian
        withUnsafeBytes(of: &be) { bytes.append(contentsOf: $0) }
    }
}
