import KVGossipCore

/// Grants, records and revocations as they arrive from peers, clients and files
/// (Docs/protocol.md §Grant, §Record, §Revocation). Each encoding is canonical: a decoded object
/// re-encodes to exactly the bytes it came from, and the signature covers those bytes.
enum SignedObjectTargets {
    /// Read both ways production reads a grant: strictly (grant files, `grants add`: every pattern
    /// must parse) and lazily (grants riding in pools, revocations and credentials: patterns parsed
    /// only when a key is matched). The two readings differ only in refusing unparsable patterns.
    static let grant = FuzzTarget("grant", dictionary: patternTokens, seeds: { SeedObjects.grants.map(\.encoded) }) {
        input throws(Violation) in
        guard let lazy = try? Grant(decoding: input, checkingPatterns: false) else {
            try require((try? Grant(decoding: input)) == nil, "the strict reading accepts a grant the lazy one refuses")
            return false
        }
        try checkGrant(lazy, encoding: input)
        let strict = try? Grant(decoding: input)
        try require((strict != nil) == lazy.patternsAreValid, "the strict reading disagrees with the grant's own verdict on its patterns")
        if let strict { try require(strict == lazy && strict.patternTexts == lazy.patternTexts, "the two readings give different grants") }
        return true
    }

    static let record = FuzzTarget("record", maxInputBytes: 8192, dictionary: patternTokens, seeds: { SeedObjects.records.map(\.encoded) }) {
        input throws(Violation) in
        guard let record = try? Record(decoding: input) else { return false }
        try checkRecord(record, encoding: input)
        return true
    }

    static let revocation = FuzzTarget("revocation", dictionary: patternTokens, seeds: { SeedObjects.revocations.map(\.encoded) }) {
        input throws(Violation) in
        guard let revocation = try? Revocation(decoding: input) else { return false }
        try checkRevocation(revocation, encoding: input)
        return true
    }

    /// Pieces of patterns and the tags, so mutations reach the pattern parser and the matcher.
    static let patternTokens = ["kvgossip/grant/v1\u{0}", "kvgossip/record/v1\u{0}", "kvgossip/revocation/v1\u{0}", "/**", "/*", "?", "/app/"]

    /// A grant as it arrives in any of its places, read lazily (its patterns may not parse).
    static func checkGrant(_ grant: Grant, encoding: [UInt8]) throws(Violation) {
        try require(grant.encoded == encoding, "grant \(grant.id.hex) re-encodes to different bytes")
        let again = try mustDecode("a grant's encoding") { () throws(Refusal) in try Grant(decoding: grant.encoded, checkingPatterns: false) }
        try require(
            again == grant && again.patternTexts == grant.patternTexts && again.mayDelegate == grant.mayDelegate
                && again.notBefore == grant.notBefore && again.expires == grant.expires && again.issuee == grant.issuee,
            "grant \(grant.id.hex) decodes to a different grant the second time")
        // What the issuing side refuses to sign, the decoder must refuse to read (Docs/protocol.md §Grant);
        // no pattern at all is a membership grant (Docs/contract.md §Admission).
        try require(grant.issuer != grant.issuee, "a decoded grant has issuer = issuee")
        try require(grant.patternTexts.count <= Limits.default.maxPatternsPerGrant, "a decoded grant has \(grant.patternTexts.count) patterns")
        try require(grant.expires.map { $0 > grant.notBefore } ?? true, "a decoded grant expires before it starts")
        let parsed = grant.patterns
        try require(grant.patternsAreValid == (parsed.count == grant.patternTexts.count), "patternsAreValid disagrees with the parsed patterns")
        for pattern in parsed { try PathTextChecks.checkPattern(pattern) }
        // Matching with the shared cache of parsed patterns agrees with matching afresh, and a grant
        // with a pattern that does not parse matches nothing.
        let cache = GrantVerificationCache()
        for key in parsed.flatMap(keysNear) {
            let matches = grant.matches(key)
            try require(cache.matches(grant, key) == matches, "the pattern cache and the grant disagree on \(key)")
            try require(grant.patternsAreValid || !matches, "a grant with a pattern that does not parse matches \(key)")
        }
        _ = grant.signatureIsValid
    }

    /// Keys a pattern names or narrows to: its own text when literal, its literal prefix.
    private static func keysNear(_ pattern: Pattern) -> [Key] {
        [pattern.text, pattern.literalPrefix].compactMap { try? Key($0) }
    }

    static func checkRecord(_ record: Record, encoding: [UInt8]) throws(Violation) {
        try require(record.encoded == encoding, "record \(record.digest.hex) re-encodes to different bytes")
        let again = try mustDecode("a record's encoding") { () throws(Refusal) in try Record(decoding: record.encoded) }
        try require(
            again == record && again.key == record.key && again.version == record.version && again.signer == record.signer,
            "record \(record.digest.hex) decodes to a different record the second time")
        try require(record.kind == .value || record.value.isEmpty, "a decoded tombstone carries a value")
        try require(record.pool.count <= Limits.default.maxPoolGrants, "a decoded pool has \(record.pool.count) grants")
        let poolBytes = record.pool.reduce(0) { $0 + $1.encoded.count }
        try require(poolBytes <= Limits.default.maxPoolBytes, "a decoded pool holds \(poolBytes) bytes of grants")
        for grant in record.pool { try checkGrant(grant, encoding: grant.encoded) }
        // Store scans narrow a pattern to its literal prefix: every key it matches lies under it.
        for pattern in record.pool.flatMap(\.patterns) where pattern.matches(record.key) {
            let prefix = pattern.literalPrefix
            try require(
                prefix.isEmpty || record.key.path == prefix || record.key.path.hasPrefix(prefix + "/"),
                "pattern \(pattern.text) matches \(record.key) outside its literal prefix \(prefix)")
        }
        try require(SummaryEntries.entry(for: record).id == SummaryEntries.keyHash(record.key), "summary entry not at the key's position")
        try checkAuthority(record)
    }

    /// Runs the validator as a node of the record's own cluster would at the record's time; when it
    /// authorizes, the chain it names must really carry authority from the root to the signer.
    static func checkAuthority(_ record: Record) throws(Violation) {
        let validator = RecordValidator(root: record.cluster)
        guard case .authorized(let chain) = validator.validate(record, nowMs: record.timestamp.physicalMs, isRevoked: { _ in false })
        else { return }
        try require(record.signatureIsValid, "a record with a bad signature was authorized")
        try checkChain(chain, for: record)
        // With every link of that chain revoked, no chain may use one of them.
        let revoked = Set(chain.map(\.id))
        if case .authorized(let other) = validator.recheck(record, isRevoked: { revoked.contains($0) }) {
            try require(!other.contains { revoked.contains($0.id) }, "a revoked grant still authorizes \(record.key)")
            try checkChain(other, for: record)
        }
    }

    /// Docs/contract.md §Authority: a chain to the signer whose every link also covers the key.
    static func checkChain(_ chain: [Grant], for record: Record) throws(Violation) {
        try checkLinks(chain, root: record.cluster, to: record.signer, atMs: record.timestamp.physicalMs, lastDelegates: false)
        for (index, link) in chain.enumerated() {
            try require(link.matches(record.key), "chain link \(index) does not cover \(record.key)")
        }
    }

    /// The shape every chain of grants has (Docs/contract.md §Authority, §Admission, §Revocation):
    /// empty only for the root itself; else root first, each link issued by the previous link's
    /// issuee, every link but the last delegating (the last too when `lastDelegates`), the last
    /// naming `holder`, all grants of this cluster with valid signatures (checked here without any
    /// cache) and in force at `ms`.
    static func checkLinks(_ chain: [Grant], root: PublicKey, to holder: PublicKey, atMs ms: UInt64, lastDelegates: Bool) throws(Violation) {
        guard let last = chain.last else {
            try require(holder == root, "an empty chain stood for a key other than the root")
            return
        }
        try require(chain.count <= Limits.default.maxChainLength, "chain of \(chain.count) links")
        try require(chain[0].issuer == root && last.issuee == holder, "chain does not run from the root to \(holder.fingerprint)")
        for (index, link) in chain.enumerated() {
            try require(link.cluster == root && link.signatureIsValid, "chain link \(index) is not a signed grant of this cluster")
            try require(link.isValid(atMs: ms), "chain link \(index) is not in force at \(ms)")
            if index + 1 < chain.count {
                try require(link.mayDelegate && chain[index + 1].issuer == link.issuee, "chain link \(index) does not delegate to the next")
            } else if lastDelegates {
                try require(link.mayDelegate, "the last link of a delegation chain does not delegate")
            }
        }
    }

    static func checkRevocation(_ revocation: Revocation, encoding: [UInt8]) throws(Violation) {
        try require(revocation.encoded == encoding, "revocation \(revocation.digest.hex) re-encodes to different bytes")
        let again = try mustDecode("a revocation's encoding") { () throws(Refusal) in try Revocation(decoding: revocation.encoded) }
        try require(
            again == revocation && again.grantID == revocation.grantID && again.revokedAt == revocation.revokedAt
                && again.grant == revocation.grant && again.proof == revocation.proof,
            "revocation \(revocation.digest.hex) decodes to a different revocation the second time")
        try require(revocation.proof.count <= Limits.default.maxChainLength, "a decoded proof holds \(revocation.proof.count) grants")
        for grant in [revocation.grant].compactMap({ $0 }) + revocation.proof { try checkGrant(grant, encoding: grant.encoded) }
        try require(SummaryEntries.entry(for: revocation).id == revocation.grantID, "summary entry not at the grant's position")
        let root = revocation.cluster
        let search = ChainSearch(root: root, cache: GrantVerificationCache())
        guard (try? revocation.verify(using: search)) != nil else { return }
        // Accepted: signed by the root, or by the issuer of the attached, revoked grant who shows a
        // chain of delegating grants from the root in force when it revoked (Docs/contract.md §Revocation).
        try require(revocation.signer.verifies(revocation.signature, over: revocation.signedBytes), "a revocation with a bad signature was accepted")
        if revocation.signer == root { return }
        let byIssuer = revocation.grant.map { $0.issuer == revocation.signer && $0.id == revocation.grantID && $0.signatureIsValid } ?? false
        try require(byIssuer, "a revocation by someone other than the root or the grant's issuer was accepted")
        guard let chain = search.delegation(to: revocation.signer, atMs: revocation.revokedAt, pool: revocation.proof) else {
            throw Violation(text: "a revocation was accepted without a proof of the revoker's power")
        }
        try checkLinks(chain, root: root, to: revocation.signer, atMs: revocation.revokedAt, lastDelegates: true)
    }
}
