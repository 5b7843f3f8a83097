import CSodium

/// A cluster secret: 32 bytes shared by every agent that may sync with this one (like Serf's
/// `encrypt_key`). Its text form is base64url.
public struct ClusterSecret: Sendable, Equatable {
    public static let byteCount = 32
    let key: [UInt8]
    /// A separate 32-byte key for Serf's gossip encryption (`encrypt_key`), so one secret file
    /// protects both Serf and sync without the two sharing a key.
    public let serfKey: [UInt8]

    public init?(text: String) {
        guard let raw = Base64URL.decode(text.trimmingASCIIWhitespace()), raw.count == ClusterSecret.byteCount else { return nil }
        key = ClusterSecret.derive(raw)
        var w = ByteWriter()
        w.fixed(Array("kvgossip/serf-gossip/v1\u{0}".utf8))
        w.fixed(raw)
        serfKey = Hash256.of(w.bytes).bytes
    }

    public static func generate() -> String { Base64URL.encode(secureRandomBytes(byteCount)) }

    /// A key for sync streams only, so the secret is never used directly.
    static func derive(_ raw: [UInt8]) -> [UInt8] {
        var w = ByteWriter()
        w.fixed(Array("kvgossip/sync-stream/v1\u{0}".utf8))
        w.fixed(raw)
        return Hash256.of(w.bytes).bytes
    }
}

/// One direction of an encrypted, authenticated connection (libsodium secretstream,
/// XChaCha20-Poly1305): frames decrypt only in order, only with the cluster secret, and any
/// change, reordering or replay inside the stream fails.
///
/// Sendable so it can be handed to the one task that writes a connection; it must never be used by
/// two at once (each seal advances the stream).
public final class SecretStreamSender: @unchecked Sendable {
    public static let headerBytes = Int(crypto_secretstream_xchacha20poly1305_HEADERBYTES)
    public static let overheadBytes = Int(crypto_secretstream_xchacha20poly1305_ABYTES)
    private let state: UnsafeMutablePointer<crypto_secretstream_xchacha20poly1305_state>
    /// Sent once, before the first frame.
    public let header: [UInt8]

    public convenience init(secret: ClusterSecret) { self.init(key: secret.key) }

    /// A stream sealed with a 32-byte key (a link's send key).
    public init(key: [UInt8]) {
        precondition(key.count == Int(crypto_secretstream_xchacha20poly1305_KEYBYTES), "a stream key is 32 bytes")
        Sodium.ensureInitialised()
        state = .allocate(capacity: 1)
        var header = [UInt8](repeating: 0, count: SecretStreamSender.headerBytes)
        crypto_secretstream_xchacha20poly1305_init_push(state, &header, key)
        self.header = header
    }

    deinit { state.deallocate() }

    public func seal(_ plain: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: plain.count + SecretStreamSender.overheadBytes)
        var outLength: UInt64 = 0
        crypto_secretstream_xchacha20poly1305_push(
            state, &out, &outLength, plain, UInt64(plain.count), nil, 0,
            UInt8(crypto_secretstream_xchacha20poly1305_TAG_MESSAGE))
        return out
    }
}

public final class SecretStreamReceiver {
    private let state: UnsafeMutablePointer<crypto_secretstream_xchacha20poly1305_state>

    /// Fails when the header is malformed.
    public convenience init?(secret: ClusterSecret, header: [UInt8]) { self.init(key: secret.key, header: header) }

    /// A stream opened with a 32-byte key (a link's receive key).
    public init?(key: [UInt8], header: [UInt8]) {
        guard header.count == SecretStreamSender.headerBytes, key.count == Int(crypto_secretstream_xchacha20poly1305_KEYBYTES) else { return nil }
        Sodium.ensureInitialised()
        let state = UnsafeMutablePointer<crypto_secretstream_xchacha20poly1305_state>.allocate(capacity: 1)
        guard crypto_secretstream_xchacha20poly1305_init_pull(state, header, key) == 0 else {
            state.deallocate()
            return nil
        }
        self.state = state
    }

    deinit { state.deallocate() }

    /// The plaintext, or nil when the frame was not sealed by a holder of the secret in this stream.
    public func open(_ sealed: [UInt8]) -> [UInt8]? {
        guard sealed.count >= SecretStreamSender.overheadBytes else { return nil }
        var out = [UInt8](repeating: 0, count: sealed.count - SecretStreamSender.overheadBytes)
        var outLength: UInt64 = 0
        var tag: UInt8 = 0
        let rc = crypto_secretstream_xchacha20poly1305_pull(
            state, &out, &outLength, &tag, sealed, UInt64(sealed.count), nil, 0)
        return rc == 0 ? Array(out.prefix(Int(outLength))) : nil
    }
}
