import CSodium

/// An Ed25519 public key: the identity of an entity, and of the cluster (the root key).
public struct PublicKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    public static let byteCount = 32
    public let bytes: [UInt8]

    /// The 32 bytes in one call: the synthesized hash feeds an array to the hasher a byte at a
    /// time, and chain searches and the grant cache hash keys for every record they check.
    public func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    public init?(bytes: [UInt8]) {
        guard bytes.count == PublicKey.byteCount else { return nil }
        self.bytes = bytes
    }

    /// Checks `signature` over `message` (libsodium rejects non-canonical and small-order encodings).
    public func verifies(_ signature: Signature, over message: [UInt8]) -> Bool {
        Sodium.ensureInitialised()
        return signature.bytes.withUnsafeBufferPointer { sig in
            message.withUnsafeBufferPointer { msg in
                bytes.withUnsafeBufferPointer { pk in
                    crypto_sign_verify_detached(sig.baseAddress!, msg.baseAddress, UInt64(msg.count), pk.baseAddress!) == 0
                }
            }
        }
    }

    /// First 8 bytes of BLAKE2b-256 of the key, in hex: short enough for logs and listings.
    public var fingerprint: String { Hex.encode(Array(Hash256.of(bytes).bytes.prefix(8))) }

    public static func < (lhs: PublicKey, rhs: PublicKey) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }

    public var description: String { text }
}

/// A 64-byte Ed25519 detached signature.
public struct Signature: Hashable, Sendable {
    public static let byteCount = 64
    public let bytes: [UInt8]

    /// The 64 bytes in one call, as `PublicKey` does.
    public func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    public init?(bytes: [UInt8]) {
        guard bytes.count == Signature.byteCount else { return nil }
        self.bytes = bytes
    }
}

/// An Ed25519 key pair derived from a 32-byte seed. Only the seed is ever stored.
public struct SigningKey: Sendable {
    public static let seedByteCount = 32
    public let seed: [UInt8]
    public let publicKey: PublicKey
    private let expanded: [UInt8]

    public init?(seed: [UInt8]) {
        guard seed.count == SigningKey.seedByteCount else { return nil }
        Sodium.ensureInitialised()
        var pk = [UInt8](repeating: 0, count: Int(crypto_sign_PUBLICKEYBYTES))
        var sk = [UInt8](repeating: 0, count: Int(crypto_sign_SECRETKEYBYTES))
        guard crypto_sign_seed_keypair(&pk, &sk, seed) == 0 else { return nil }
        self.seed = seed
        self.expanded = sk
        self.publicKey = PublicKey(bytes: pk)!
    }

    /// A fresh key from the operating system's random source.
    public static func generate() -> SigningKey {
        SigningKey(seed: secureRandomBytes(seedByteCount))!
    }

    public func sign(_ message: [UInt8]) -> Signature {
        var sig = [UInt8](repeating: 0, count: Signature.byteCount)
        message.withUnsafeBufferPointer { msg in
            _ = crypto_sign_detached(&sig, nil, msg.baseAddress, UInt64(msg.count), expanded)
        }
        return Signature(bytes: sig)!
    }
}
