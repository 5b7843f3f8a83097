/// A signed statement "issuer lets issuee write keys matching these patterns"
/// (Docs/contract.md §Signed objects).
public struct Grant: Hashable, Sendable {
    public static let nonceByteCount = 16

    public let cluster: PublicKey
    public let issuer: PublicKey
    public let issuee: PublicKey
    /// The patterns as signed. They are parsed only when a key must be matched (`patterns`,
    /// `GrantVerificationCache.matches`): a grant that merely rides in a record's pool, a
    /// revocation or a link credential costs no parsing, so a pool of junk costs no more than its
    /// bytes (Docs/contract.md §Authority).
    public let patternTexts: [String]
    public let mayDelegate: Bool
    /// Milliseconds since the Unix epoch.
    public let notBefore: UInt64
    public let expires: UInt64?
    public let nonce: [UInt8]
    public let signature: Signature

    /// The exact bytes the issuer signed; the grant id is their BLAKE2b-256.
    public let signedBytes: [UInt8]
    public let id: Hash256

    /// Builds and signs a grant. Shape errors (issuer = issuee, pattern count) are refused here so a
    /// bad grant never leaves the machine that made it.
    public init(
        cluster: PublicKey, issuer: SigningKey, issuee: PublicKey, patterns: [Pattern], mayDelegate: Bool,
        notBefore: UInt64, expires: UInt64?, nonce: [UInt8], limits: Limits = .default
    ) throws(Refusal) {
        let body = Grant.Body(
            cluster: cluster, issuer: issuer.publicKey, issuee: issuee, patternTexts: patterns.map(\.text),
            mayDelegate: mayDelegate, notBefore: notBefore, expires: expires, nonce: nonce)
        try body.check(limits)
        let signed = body.encode()
        self.init(body: body, signature: issuer.sign(signed), signedBytes: signed)
    }

    private init(body: Body, signature: Signature, signedBytes: [UInt8]) {
        cluster = body.cluster
        issuer = body.issuer
        issuee = body.issuee
        patternTexts = body.patternTexts
        mayDelegate = body.mayDelegate
        notBefore = body.notBefore
        expires = body.expires
        nonce = body.nonce
        self.signature = signature
        self.signedBytes = signedBytes
        id = Hash256.of(signedBytes)
    }

    /// Signed bytes followed by the 64-byte signature.
    public var encoded: [UInt8] { signedBytes + signature.bytes }

    /// Decodes a grant. With `checkingPatterns` (grant files, `grants add`) every pattern must
    /// parse, or the grant is refused as malformed; without it (grants riding in pools, revocations
    /// and credentials) patterns are parsed only if a key is ever matched against them.
    public init(decoding bytes: [UInt8], limits: Limits = .default, checkingPatterns: Bool = true) throws(Refusal) {
        var reader = ByteReader(bytes)
        self = try Grant.read(from: &reader, limits: limits, checkingPatterns: checkingPatterns)
        try reader.expectEnd("grant")
    }

    static func read(from reader: inout ByteReader, limits: Limits, checkingPatterns: Bool) throws(Refusal) -> Grant {
        let start = reader.offset
        let body = try Body.read(from: &reader, limits: limits)
        if checkingPatterns {
            for text in body.patternTexts {
                do { _ = try Pattern(text) } catch { throw Refusal(.malformed, error.description) }
            }
        }
        let signed = reader.consumed(since: start)
        let signature = try reader.signature("grant signature")
        return Grant(body: body, signature: signature, signedBytes: signed)
    }

    /// The patterns, parsed now (each time: callers that match many keys use
    /// `GrantVerificationCache.matches`). A pattern that does not parse is left out; see
    /// `patternsAreValid`.
    public var patterns: [Pattern] { patternTexts.compactMap { try? Pattern($0) } }

    /// Whether every pattern parses. A grant with one that does not authorizes nothing.
    public var patternsAreValid: Bool { patternTexts.allSatisfy { (try? Pattern($0)) != nil } }

    /// The issuer's signature over the signed bytes (not cached here; see `GrantVerificationCache`).
    public var signatureIsValid: Bool { issuer.verifies(signature, over: signedBytes) }

    /// Whether the grant is in force at `ms` (not-before inclusive, expiry exclusive).
    public func isValid(atMs ms: UInt64) -> Bool {
        ms >= notBefore && (expires.map { ms < $0 } ?? true)
    }

    /// Whether a pattern matches `key` (false for a grant whose patterns do not all parse).
    public func matches(_ key: Key) -> Bool {
        let parsed = patterns
        return parsed.count == patternTexts.count && parsed.contains { $0.matches(key) }
    }

    public static func == (a: Grant, b: Grant) -> Bool { a.id == b.id && a.signature == b.signature }
    public func hash(into h: inout Hasher) { h.combine(id) }
}

extension Grant {
    /// The signed fields, in their fixed order.
    struct Body {
        var cluster: PublicKey
        var issuer: PublicKey
        var issuee: PublicKey
        var patternTexts: [String]
        var mayDelegate: Bool
        var notBefore: UInt64
        var expires: UInt64?
        var nonce: [UInt8]

        func check(_ limits: Limits) throws(Refusal) {
            guard issuer != issuee else { throw Refusal(.malformed, "a grant's issuee must differ from its issuer") }
            // No pattern at all is a membership grant: it admits its holder as a peer and lets it
            // write nothing (Docs/contract.md §Admission).
            guard (0...limits.maxPatternsPerGrant).contains(patternTexts.count) else {
                throw Refusal(.malformed, "a grant holds 0 to \(limits.maxPatternsPerGrant) patterns, has \(patternTexts.count)")
            }
            guard nonce.count == Grant.nonceByteCount else { throw Refusal(.malformed, "grant nonce must be 16 bytes") }
            if let expires, expires <= notBefore {
                throw Refusal(.malformed, "grant expires (\(expires)) at or before it becomes valid (\(notBefore))")
            }
        }

        func encode() -> [UInt8] {
            var w = ByteWriter(capacity: 200)
            w.fixed(DomainTag.grant)
            w.fixed(cluster.bytes)
            w.fixed(issuer.bytes)
            w.fixed(issuee.bytes)
            w.u8(mayDelegate ? 1 : 0)
            w.u64(notBefore)
            w.u8(expires == nil ? 0 : 1)
            w.u64(expires ?? 0)
            w.fixed(nonce)
            w.u8(UInt8(patternTexts.count))
            for p in patternTexts { w.short(Array(p.utf8)) }
            return w.bytes
        }

        static func read(from r: inout ByteReader, limits: Limits) throws(Refusal) -> Body {
            try DomainTag.read(DomainTag.grant, kind: "grant", from: &r)
            let cluster = try r.publicKey("cluster id")
            let issuer = try r.publicKey("issuer")
            let issuee = try r.publicKey("issuee")
            let flags = try r.u8("flags")
            guard flags <= 1 else { throw Refusal(.malformed, "unknown grant flags \(flags)") }
            let notBefore = try r.u64("not-before")
            let hasExpiry = try r.u8("expiry flag")
            let expiry = try r.u64("expiry")
            guard hasExpiry <= 1, hasExpiry == 1 || expiry == 0 else { throw Refusal(.malformed, "bad expiry field") }
            let nonce = try r.fixed(Grant.nonceByteCount, "nonce")
            let count = Int(try r.u8("pattern count"))
            guard count <= limits.maxPatternsPerGrant else {
                throw Refusal(.tooLarge, "grant has \(count) patterns, limit \(limits.maxPatternsPerGrant)")
            }
            var patterns: [String] = []
            for _ in 0..<count {
                let raw = try r.short("pattern", max: Pattern.maxBytes)
                guard let text = String(validating: raw, as: UTF8.self) else { throw Refusal(.malformed, "pattern is not UTF-8") }
                patterns.append(text)
            }
            let body = Body(
                cluster: cluster, issuer: issuer, issuee: issuee, patternTexts: patterns, mayDelegate: flags == 1,
                notBefore: notBefore, expires: hasExpiry == 1 ? expiry : nil, nonce: nonce)
            try body.check(limits)
            return body
        }
    }
}
