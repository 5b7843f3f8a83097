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

    /// A short field holding at most `maxBytes` of `text`'s UTF-8 (`String.utf8Prefix`), so the
    /// field stays valid UTF-8.
    public mutating func shortText(_ text: String, maxBytes: Int) {
        short(Array(text.utf8Prefix(maxBytes: maxBytes).utf8))
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

extension String {
    /// The longest start of this text that takes at most `maxBytes` bytes of UTF-8, cut between
    /// code points. A cut inside one reads back as U+FFFD, which is longer than the bytes it
    /// replaces: past a field's limit (the peer refuses it) or a changed text. Caught by the fuzz
    /// targets (sync, tree-hash, link-identity).
    public func utf8Prefix(maxBytes: Int) -> String {
        let utf8 = Array(self.utf8)
        guard utf8.count > maxBytes else { return self }
        var cut = maxBytes
        while cut > 0 && UTF8.isContinuation(utf8[cut]) { cut -= 1 }
        return String(decoding: utf8[..<cut], as: UTF8.self)
    }
}
