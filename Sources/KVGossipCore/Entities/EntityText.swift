/// Text forms of entity keys (Docs/contract.md §Entities): `ed25519:<base64url>` for public keys, and a
/// one-line armored seed for secret key files.
public struct KeyTextError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

extension PublicKey {
    public static let textPrefix = "ed25519:"

    /// `ed25519:` followed by the unpadded base64url of the 32 bytes.
    public var text: String { PublicKey.textPrefix + Base64URL.encode(bytes) }

    /// Parses the text form; anything else is refused with a message that says what was expected.
    public init(text: String) throws(KeyTextError) {
        let trimmed = text.trimmingASCIIWhitespace()
        guard trimmed.hasPrefix(PublicKey.textPrefix) else {
            throw KeyTextError("public key must look like \(PublicKey.textPrefix)<43 base64url characters>, got \"\(trimmed.prefix(60))\"")
        }
        let body = trimmed.dropFirst(PublicKey.textPrefix.count)
        guard let raw = Base64URL.decode(body), let key = PublicKey(bytes: raw) else {
            throw KeyTextError("public key \"\(trimmed.prefix(60))\" is not 32 bytes of unpadded base64url after \(PublicKey.textPrefix)")
        }
        self = key
    }
}

/// The secret key file: one line `kvgossip-secret-key:ed25519:<base64url seed>`. Reading it is
/// pure: the caller supplies the contents and the file's permission bits.
public enum SecretKeyFile {
    public static let prefix = "kvgossip-secret-key:ed25519:"

    public static func render(_ key: SigningKey) -> String {
        prefix + Base64URL.encode(key.seed) + "\n"
    }

    /// - Parameter mode: the file's permission bits; group or other access is refused, as ssh does.
    public static func parse(_ contents: String, mode: UInt32, path: String) throws(KeyTextError) -> SigningKey {
        // What the file is comes first: a grant or public file given by mistake is named as such,
        // not met with advice to chmod it.
        let line = contents.trimmingASCIIWhitespace()
        guard line.hasPrefix(prefix) else {
            throw KeyTextError("\(path) is not a kvgossip secret key file (expected a line starting with \(prefix))")
        }
        if mode & 0o077 != 0 {
            throw KeyTextError("secret key file \(path) is accessible by group or others (mode \(String(mode & 0o777, radix: 8))); run: chmod 600 \(path)")
        }
        guard let seed = Base64URL.decode(line.dropFirst(prefix.count)), let key = SigningKey(seed: seed) else {
            throw KeyTextError("\(path): the secret key is not 32 bytes of unpadded base64url")
        }
        return key
    }
}

extension StringProtocol {
    /// Leading and trailing spaces, tabs and newlines (LF, CR, CRLF) removed, without Foundation.
    func trimmingASCIIWhitespace() -> String {
        // CRLF is one `Character`, equal to neither "\r" nor "\n".
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" }
        guard let first = firstIndex(where: { !isSpace($0) }) else { return "" }
        let last = lastIndex(where: { !isSpace($0) })!
        return String(self[first...last])
    }
}
