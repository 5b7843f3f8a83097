import CSodium

/// A 32-byte BLAKE2b-256 digest. Value type, ordered bytewise so that sets of digests sort the same
/// way on every node.
public struct Hash256: Hashable, Comparable, Sendable, CustomStringConvertible {
    public static let byteCount = 32
    public static let zero = Hash256(uncheckedBytes: [UInt8](repeating: 0, count: 32))

    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == Hash256.byteCount else { return nil }
        self.bytes = bytes
    }

    init(uncheckedBytes: [UInt8]) {
        self.bytes = uncheckedBytes
    }

    /// BLAKE2b-256 of the given bytes.
    public static func of(_ data: [UInt8]) -> Hash256 {
        Sodium.ensureInitialised()
        var out = [UInt8](repeating: 0, count: byteCount)
        data.withUnsafeBufferPointer { buf in
            _ = crypto_generichash(&out, byteCount, buf.baseAddress, UInt64(buf.count), nil, 0)
        }
        return Hash256(uncheckedBytes: out)
    }

    public static func < (lhs: Hash256, rhs: Hash256) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
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

    public mutating func update(_ byte: UInt8) {
        update([byte])
    }

    public consuming func finalize() -> Hash256 {
        var out = [UInt8](repeating: 0, count: Hash256.byteCount)
        crypto_generichash_final(OpaquePointer(state), &out, Hash256.byteCount)
        return Hash256(uncheckedBytes: out)
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
