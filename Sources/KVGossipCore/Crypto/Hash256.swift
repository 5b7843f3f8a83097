import CSodium

/// A 32-byte BLAKE2b-256 digest. Value type, ordered bytewise so that sets of digests sort the same
/// way on every node. Held inline as four big-endian words, not as an array: a store batch reads
/// tens of thousands of digests (summary leaves, internal nodes), and the mount keeps one per key,
/// so a heap allocation per digest was both time and memory. Comparing the words in order compares
/// the bytes lexicographically.
public struct Hash256: Hashable, Comparable, Sendable, CustomStringConvertible {
    public static let byteCount = 32
    public static let zero = Hash256(w0: 0, w1: 0, w2: 0, w3: 0)

    let w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64

    /// From four words, the first most significant.
    init(w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64) {
        (self.w0, self.w1, self.w2, self.w3) = (w0, w1, w2, w3)
    }

    public init?(bytes: [UInt8]) {
        guard bytes.count == Hash256.byteCount else { return nil }
        self.init(uncheckedBytes: bytes)
    }

    /// Exactly 32 bytes, read in place (a database column, a slice of a message).
    public init?(raw: UnsafeRawBufferPointer) {
        guard raw.count == Hash256.byteCount else { return nil }
        self.init(w0: Self.word(raw, 0), w1: Self.word(raw, 8), w2: Self.word(raw, 16), w3: Self.word(raw, 24))
    }

    init(uncheckedBytes: [UInt8]) {
        self = uncheckedBytes.withUnsafeBytes { Hash256(raw: $0)! }
    }

    private static func word(_ raw: UnsafeRawBufferPointer, _ offset: Int) -> UInt64 {
        UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// The 32 bytes, as a new array (an allocation: hot paths use `withUnsafeBytes` or `byte(at:)`).
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// The 32 bytes in place, for the duration of `body`.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var big = (w0.bigEndian, w1.bigEndian, w2.bigEndian, w3.bigEndian)
        return try Swift.withUnsafeBytes(of: &big) { try body($0) }
    }

    /// Byte `index` (0..<32), first byte most significant.
    public func byte(at index: Int) -> UInt8 {
        precondition((0 ..< Hash256.byteCount).contains(index), "Hash256 byte \(index) out of range")
        let word = index < 16 ? (index < 8 ? w0 : w1) : (index < 24 ? w2 : w3)
        return UInt8(truncatingIfNeeded: word >> UInt64(56 - (index & 7) * 8))
    }

    /// BLAKE2b-256 of the given bytes.
    public static func of(_ data: [UInt8]) -> Hash256 {
        Sodium.ensureInitialised()
        return filled { out in
            data.withUnsafeBufferPointer { buf in
                _ = crypto_generichash(out, byteCount, buf.baseAddress, UInt64(buf.count), nil, 0)
            }
        }
    }

    /// A digest written by a C function into a 32-byte buffer on the stack.
    static func filled(_ write: (UnsafeMutablePointer<UInt8>) -> Void) -> Hash256 {
        var buffer: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        return Swift.withUnsafeMutableBytes(of: &buffer) { raw in
            write(raw.baseAddress!.assumingMemoryBound(to: UInt8.self))
            return Hash256(raw: UnsafeRawBufferPointer(raw))!
        }
    }

    public static func < (lhs: Hash256, rhs: Hash256) -> Bool {
        (lhs.w0, lhs.w1, lhs.w2, lhs.w3) < (rhs.w0, rhs.w1, rhs.w2, rhs.w3)
    }

    public var hex: String { Hex.encode(bytes) }
    public var description: String { hex }
}

/// Incremental BLAKE2b-256, for hashing many fields without concatenating them first.
/// libsodium's state struct is 64-byte aligned, which Swift cannot import, so it lives in raw memory.
public struct Hasher256: ~Copyable {
    private let state: UnsafeMutableRawPointer

    public init() {
        Sodium.ensureInitialised()
        state = UnsafeMutableRawPointer.allocate(byteCount: crypto_generichash_statebytes(), alignment: 64)
        crypto_generichash_init(OpaquePointer(state), nil, 0, Hash256.byteCount)
    }

    deinit { state.deallocate() }

    public mutating func update(_ data: [UInt8]) {
        data.withUnsafeBufferPointer { buf in
            _ = crypto_generichash_update(OpaquePointer(state), buf.baseAddress, UInt64(buf.count))
        }
    }

    public mutating func update(_ hash: Hash256) {
        hash.withUnsafeBytes { raw in
            _ = crypto_generichash_update(OpaquePointer(state), raw.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(raw.count))
        }
    }

    public mutating func update(_ byte: UInt8) {
        update([byte])
    }

    public consuming func finalize() -> Hash256 {
        let state = self.state
        return Hash256.filled { out in _ = crypto_generichash_final(OpaquePointer(state), out, Hash256.byteCount) }
    }
}

/// Lower-case hexadecimal, the form used for digests and ids in logs and listings.
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(chars.count / 2)
        var i = 0
        while i < chars.count {
            guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
