/// A 256-bit value held as four big-endian words, so that comparing words in order compares the
/// bytes lexicographically, and nibble arithmetic needs no heap access. It backs `NibblePath` and
/// the in-memory entry index with the bit operations they need (`Hash256` has the same layout and
/// converts without copying bytes).
struct PackedWords256: Hashable, Comparable, Sendable {
    var w0: UInt64
    var w1: UInt64
    var w2: UInt64
    var w3: UInt64

    static let zero = PackedWords256(w0: 0, w1: 0, w2: 0, w3: 0)
    static let allOnes = PackedWords256(w0: .max, w1: .max, w2: .max, w3: .max)

    init(w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64) {
        self.w0 = w0
        self.w1 = w1
        self.w2 = w2
        self.w3 = w3
    }

    /// Packs exactly 32 bytes, first byte most significant.
    init(_ bytes: [UInt8]) {
        precondition(bytes.count == 32, "PackedWords256 needs 32 bytes")
        (w0, w1, w2, w3) = bytes.withUnsafeBytes { raw in
            (
                UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
                UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
                UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self)),
                UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
            )
        }
    }

    init(_ hash: Hash256) {
        self.init(w0: hash.w0, w1: hash.w1, w2: hash.w2, w3: hash.w3)
    }

    var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        out.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: w0.bigEndian, toByteOffset: 0, as: UInt64.self)
            raw.storeBytes(of: w1.bigEndian, toByteOffset: 8, as: UInt64.self)
            raw.storeBytes(of: w2.bigEndian, toByteOffset: 16, as: UInt64.self)
            raw.storeBytes(of: w3.bigEndian, toByteOffset: 24, as: UInt64.self)
        }
        return out
    }

    var hash256: Hash256 { Hash256(w0: w0, w1: w1, w2: w2, w3: w3) }

    subscript(word index: Int) -> UInt64 {
        get {
            switch index {
            case 0: return w0
            case 1: return w1
            case 2: return w2
            default: return w3
            }
        }
        set {
            switch index {
            case 0: w0 = newValue
            case 1: w1 = newValue
            case 2: w2 = newValue
            default: w3 = newValue
            }
        }
    }

    /// Nibble `index` (0...63), counting from the most significant.
    func nibble(at index: Int) -> UInt8 {
        let shift = UInt64(60 - 4 * (index & 15))
        return UInt8(truncatingIfNeeded: (self[word: index >> 4] >> shift) & 0xF)
    }

    mutating func setNibble(_ value: UInt8, at index: Int) {
        let shift = UInt64(60 - 4 * (index & 15))
        let word = self[word: index >> 4]
        self[word: index >> 4] = (word & ~(0xF << shift)) | (UInt64(value & 0xF) << shift)
    }

    /// The mask keeping the first `count` nibbles (0...64) and clearing the rest.
    static func prefixMask(nibbles count: Int) -> PackedWords256 {
        func wordMask(_ kept: Int) -> UInt64 {
            if kept <= 0 { return 0 }
            if kept >= 16 { return .max }
            return UInt64.max << UInt64(64 - 4 * kept)
        }
        return PackedWords256(
            w0: wordMask(count), w1: wordMask(count - 16), w2: wordMask(count - 32), w3: wordMask(count - 48))
    }

    static func & (lhs: PackedWords256, rhs: PackedWords256) -> PackedWords256 {
        PackedWords256(w0: lhs.w0 & rhs.w0, w1: lhs.w1 & rhs.w1, w2: lhs.w2 & rhs.w2, w3: lhs.w3 & rhs.w3)
    }

    static func | (lhs: PackedWords256, rhs: PackedWords256) -> PackedWords256 {
        PackedWords256(w0: lhs.w0 | rhs.w0, w1: lhs.w1 | rhs.w1, w2: lhs.w2 | rhs.w2, w3: lhs.w3 | rhs.w3)
    }

    static prefix func ~ (value: PackedWords256) -> PackedWords256 {
        PackedWords256(w0: ~value.w0, w1: ~value.w1, w2: ~value.w2, w3: ~value.w3)
    }

    static func < (lhs: PackedWords256, rhs: PackedWords256) -> Bool {
        if lhs.w0 != rhs.w0 { return lhs.w0 < rhs.w0 }
        if lhs.w1 != rhs.w1 { return lhs.w1 < rhs.w1 }
        if lhs.w2 != rhs.w2 { return lhs.w2 < rhs.w2 }
        return lhs.w3 < rhs.w3
    }
}
