import CSodium

/// An ephemeral X25519 key pair for one connection (libsodium `crypto_kx`), and the two session
/// keys it agrees with the peer's: one per direction, so a frame sent can never be taken for a
/// frame received (a reflected stream does not decrypt).
public struct KeyExchangeKeyPair: Sendable {
    public static let publicKeyBytes = Int(crypto_kx_PUBLICKEYBYTES)
    public let publicKey: [UInt8]
    let secretKey: [UInt8]

    /// A fresh key pair from the operating system's randomness.
    public static func generate() -> KeyExchangeKeyPair { KeyExchangeKeyPair(seed: secureRandomBytes(32)) }

    /// A key pair derived from a 32-byte seed (tests and protocol vectors).
    public init(seed: [UInt8]) {
        precondition(seed.count == Int(crypto_kx_SEEDBYTES), "a key exchange seed is 32 bytes")
        Sodium.ensureInitialised()
        var pk = [UInt8](repeating: 0, count: KeyExchangeKeyPair.publicKeyBytes)
        var sk = [UInt8](repeating: 0, count: Int(crypto_kx_SECRETKEYBYTES))
        _ = crypto_kx_seed_keypair(&pk, &sk, seed)
        publicKey = pk
        secretKey = sk
    }

    /// The (receive, send) keys shared with the peer whose public key is `peer`. Each side calls
    /// it with its own role; the initiator's send key is the responder's receive key. Nil when the
    /// peer's key is unacceptable (a low-order point).
    public func sessionKeys(peer: [UInt8], asInitiator: Bool) -> (receive: [UInt8], send: [UInt8])? {
        guard peer.count == KeyExchangeKeyPair.publicKeyBytes else { return nil }
        var rx = [UInt8](repeating: 0, count: Int(crypto_kx_SESSIONKEYBYTES))
        var tx = [UInt8](repeating: 0, count: Int(crypto_kx_SESSIONKEYBYTES))
        let rc = asInitiator
            ? crypto_kx_client_session_keys(&rx, &tx, publicKey, secretKey, peer)
            : crypto_kx_server_session_keys(&rx, &tx, publicKey, secretKey, peer)
        return rc == 0 ? (rx, tx) : nil
    }
}

/// Keyed BLAKE2b-256 (libsodium `crypto_generichash` with a key): derives the stream keys of a link
/// from the key exchange, the handshake transcript and the optional cluster secret.
public func keyedHash256(key: [UInt8], _ message: [UInt8]) -> [UInt8] {
    precondition((16...64).contains(key.count), "a BLAKE2b key is 16 to 64 bytes")
    Sodium.ensureInitialised()
    var out = [UInt8](repeating: 0, count: 32)
    _ = crypto_generichash(&out, 32, message, UInt64(message.count), key, key.count)
    return out
}
