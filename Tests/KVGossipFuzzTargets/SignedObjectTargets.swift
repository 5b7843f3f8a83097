import KVGossipCore

/// Grants, records and revocations as they arrive from peers, clients and files
/// (Docs/protocol.md §Grant, §Record, §Revocation). Each encoding is canonical: a decoded object
/// re-encodes to exactly the bytes it came from, and the signature covers those bytes.
enum SignedObjectTargets {
    static let grant = FuzzTarget("grant", dictionary: patternTokens, seeds: { SeedObjects.grants.map(\.encoded) }) {
        input throws(Violation) in
        guard let grant = try? Grant(decoding: input) else { return false }
        try checkGrant(grant, encoding: input)
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

    static func checkGrant(_ grant: Grant, encoding: [UInt8]) throws(Violation) {
        try require(grant.encoded == encoding, "grant \(grant.id.hex) re-encodes to different bytes")
        let again = try mustDecode("a grant's encoding") { () throws(Refusal) in try Grant(decoding: grant.encoded) }
        try require(
            again == grant && again.patterns == grant.patterns && again.mayDelegate == grant.mayDelegate
                && again.notBefore == grant.notBefore && again.expires == grant.expires && again.issuee == grant.issuee,
            "grant \(grant.id.hex) decodes to a different grant the second time")
        // What the issuing side refuses to sign, the decoder must refuse to read (Docs/protocol.md §Grant).
        try require(grant.issuer != grant.issuee, "a decoded grant has issuer = issuee")
        try require((1...Limits.default.maxPatternsPerGrant).contains(grant.patterns.count), "a decoded grant has \(grant.patterns.count) patterns")
        try require(grant.expires.map { $0 > grant.notBefore } ?? true, "a decoded grant expires before it starts")
        for pattern in grant.patterns { try PathTextChecks.checkPattern(pattern) }
        _ = grant.signatureIsValid
    }

    static func checkRecord(_ record: Record, encoding: [UInt8]) throws(Violation) {
        try require(record.encoded == encoding, "record \(record.digest.hex) re-encodes to different bytes")
        let again = try mustDecode("a record's encoding") { () throws(Refusal) in try Record(decoding: record.encoded) }
        try require(
            again == record && again.key == record.key && again.version == record.version && again.signer == record.signer,
            "record \(record.digest.hex) decodes to a different record the second time")
        try require(record.kind == .value || record.value.isEmpty, "a decoded tombstone carries a value")
        try require(record.pool.count <= Limits.default.maxPoolGrants, "a decoded pool has \(record.pool.count) grants")
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

    /// Docs/contract.md §Authority: root first, each link issued by the previous link's issuee, every
    /// link but the last delegating, the last naming the signer, all signed, in force and matching.
    static func checkChain(_ chain: [Grant], for record: Record) throws(Violation) {
        let root = record.cluster
        guard let last = chain.last else {
            try require(record.signer == root, "an empty chain authorized a signer other than the root")
            return
        }
        try require(chain.count <= Limits.default.maxChainLength, "chain of \(chain.count) links")
        try require(chain[0].issuer == root && last.issuee == record.signer, "chain does not run from the root to the signer")
        for (index, link) in chain.enumerated() {
            try require(link.cluster == root && link.signatureIsValid, "chain link \(index) is not a signed grant of this cluster")
            try require(link.matches(record.key) && link.isValid(atMs: record.timestamp.physicalMs), "chain link \(index) does not cover the key at its time")
            if index + 1 < chain.count {
                try require(link.mayDelegate && chain[index + 1].issuer == link.issuee, "chain link \(index) does not delegate to the next")
            }
        }
    }

    static func checkRevocation(_ revocation: Revocation, encoding: [UInt8]) throws(Violation) {
        try require(revocation.encoded == encoding, "revocation \(revocation.digest.hex) re-encodes to different bytes")
        let again = try mustDecode("a revocation's encoding") { () throws(Refusal) in try Revocation(decoding: revocation.encoded) }
        try require(
            again == revocation && again.grantID == revocation.grantID && again.revokedAt == revocation.revokedAt
                && again.grant == revocation.grant,
            "revocation \(revocation.digest.hex) decodes to a different revocation the second time")
        if let grant = revocation.grant { try checkGrant(grant, encoding: grant.encoded) }
        try require(SummaryEntries.entry(for: revocation).id == revocation.grantID, "summary entry not at the grant's position")
        guard (try? revocation.verify(root: revocation.cluster)) != nil else { return }
        // Accepted: signed by the root, or by the issuer of the attached, revoked grant.
        let byIssuer = revocation.grant.map { $0.issuer == revocation.signer && $0.id == revocation.grantID } ?? false
        try require(revocation.signer == revocation.cluster || byIssuer, "a revocation by someone other than the root or the issuer was accepted")
    }
}
