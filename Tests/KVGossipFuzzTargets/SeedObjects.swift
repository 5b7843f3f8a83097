import KVGossipCore

/// Valid signed objects to start the corpora from: the ones of Docs/protocol.md §Test vectors (root
/// key seed 32 × `01`, writer key seed 32 × `02`) and a few more that use every optional field — an
/// expiry, delegation, several patterns, no pattern (a membership grant), a chain of two grants, a
/// tombstone, an empty value, a revocation by an issuer carrying its grant and its proof.
enum SeedObjects {
    static let root = SigningKey(seed: [UInt8](repeating: 0x01, count: 32))!
    static let writer = SigningKey(seed: [UInt8](repeating: 0x02, count: 32))!
    static let team = SigningKey(seed: [UInt8](repeating: 0x03, count: 32))!
    static let member = SigningKey(seed: [UInt8](repeating: 0x04, count: 32))!
    static var cluster: PublicKey { root.publicKey }
    /// 2026-11-27T00:00:00Z, the vectors' not-before.
    static let notBefore: UInt64 = 1_795_737_600_000

    static let vectorGrant = grant(root, to: writer, ["/app/**"], delegate: false, expires: nil, nonce: 0xAB)
    static let teamGrant = grant(root, to: team, ["/app/**", "/shared/*/config"], delegate: true, expires: notBefore + 90 * 86_400_000, nonce: 0x11)
    static let subGrant = grant(team, to: writer, ["/app/*/version", "/app/db/url", "/app/x?z/**/end"], delegate: false, expires: nil, nonce: 0x22)
    static let memberGrant = grant(root, to: member, [], delegate: false, expires: nil, nonce: 0x33)

    static let vectorRecord = record("/app/db/url", "postgres://db2", by: writer, atMs: notBefore + 123, pool: [vectorGrant])
    static let chainedRecord = record("/app/web/version", "1.2.3", by: writer, atMs: notBefore + 5_000, counter: 7, pool: [subGrant, teamGrant])
    static let tombstone = record("/app/db/url", nil, by: writer, atMs: notBefore + 9_000, pool: [vectorGrant])
    static let rootRecord = record("/shared/x/config", "", by: root, atMs: notBefore + 1, pool: [])

    static let vectorRevocation = Revocation(cluster: cluster, grantID: vectorGrant.id, revokedAt: 1_795_737_700_000, signer: root)
    static let issuerRevocation = Revocation(cluster: cluster, grant: subGrant, revokedAt: notBefore + 60_000, signer: team, proof: [teamGrant])

    static let grants = [vectorGrant, teamGrant, subGrant, memberGrant]
    static let records = [vectorRecord, chainedRecord, tombstone, rootRecord]
    static let revocations = [vectorRevocation, issuerRevocation]

    private static func grant(
        _ issuer: SigningKey, to issuee: SigningKey, _ patterns: [String], delegate: Bool, expires: UInt64?, nonce: UInt8
    ) -> Grant {
        try! Grant(
            cluster: cluster, issuer: issuer, issuee: issuee.publicKey, patterns: patterns.map { try! Pattern($0) },
            mayDelegate: delegate, notBefore: notBefore, expires: expires, nonce: [UInt8](repeating: nonce, count: 16))
    }

    /// A value, or a tombstone when `value` is nil.
    private static func record(
        _ key: String, _ value: String?, by signer: SigningKey, atMs ms: UInt64, counter: UInt16 = 0, pool: [Grant]
    ) -> Record {
        Record(
            cluster: cluster, key: try! Key(key), kind: value == nil ? .tombstone : .value, value: Array((value ?? "").utf8),
            timestamp: HLC(physicalMs: ms, counter: counter), signer: signer, pool: pool)
    }
}
