/// A signed statement "grant G is no longer accepted" (Docs/contract.md §Revocation), by the grant's
/// issuer or the root.
///
/// Two attachments travel alongside, outside the signed bytes (they are signed objects themselves):
/// the revoked grant, so a node that never saw it can check that the signer really issued it, and,
/// when the signer is not the root, the signer's `proof`: a chain of delegating grants from the
/// root, valid at `revokedAt`, showing the signer had the power to issue grants at all. Without the
/// proof anyone could mint a key, a grant from that key and its revocation, as many as they like.
public struct Revocation: Hashable, Sendable {
    public let cluster: PublicKey
    public let grantID: Hash256
    /// Milliseconds since the Unix epoch; informative (a revocation applies whatever the time).
    public let revokedAt: UInt64
    public let signer: PublicKey
    public let signature: Signature
    public let grant: Grant?
    /// The signer's delegating chain from the root (empty for the root).
    public let proof: [Grant]

    public let signedBytes: [UInt8]
    /// BLAKE2b-256 of the signed bytes: the revocation's entry in the Merkle summary.
    public let digest: Hash256

    /// - Parameter proof: the signer's chain of delegating grants from the root (not needed when
    ///   the root signs).
    public init(cluster: PublicKey, grant: Grant, revokedAt: UInt64, signer: SigningKey, proof: [Grant] = []) {
        let signed = Revocation.encodeSigned(cluster: cluster, grantID: grant.id, revokedAt: revokedAt, signer: signer.publicKey)
        self.init(
            cluster: cluster, grantID: grant.id, revokedAt: revokedAt, signer: signer.publicKey,
            signature: signer.sign(signed), grant: grant, proof: signer.publicKey == cluster ? [] : proof, signedBytes: signed)
    }

    /// A revocation by grant id alone; only useful when the signer is the root.
    public init(cluster: PublicKey, grantID: Hash256, revokedAt: UInt64, signer: SigningKey) {
        let signed = Revocation.encodeSigned(cluster: cluster, grantID: grantID, revokedAt: revokedAt, signer: signer.publicKey)
        self.init(
            cluster: cluster, grantID: grantID, revokedAt: revokedAt, signer: signer.publicKey,
            signature: signer.sign(signed), grant: nil, proof: [], signedBytes: signed)
    }

    private init(
        cluster: PublicKey, grantID: Hash256, revokedAt: UInt64, signer: PublicKey, signature: Signature,
        grant: Grant?, proof: [Grant], signedBytes: [UInt8]
    ) {
        self.cluster = cluster
        self.grantID = grantID
        self.revokedAt = revokedAt
        self.signer = signer
        self.signature = signature
        self.grant = grant
        self.proof = proof
        self.signedBytes = signedBytes
        digest = Hash256.of(signedBytes)
    }

    static func encodeSigned(cluster: PublicKey, grantID: Hash256, revokedAt: UInt64, signer: PublicKey) -> [UInt8] {
        var w = ByteWriter(capacity: 160)
        w.fixed(DomainTag.revocation)
        w.fixed(cluster.bytes)
        w.fixed(grantID.bytes)
        w.u64(revokedAt)
        w.fixed(signer.bytes)
        return w.bytes
    }

    /// Signed bytes, signature, the revoked grant with a u32 length (0 when absent), then the proof:
    /// a u8 count and each grant with a u32 length (left out entirely when empty, so a revocation
    /// without proof encodes as it always did).
    public var encoded: [UInt8] {
        var w = ByteWriter(capacity: signedBytes.count + 300 * (1 + proof.count))
        w.fixed(signedBytes)
        w.fixed(signature.bytes)
        w.long(grant?.encoded ?? [])
        if !proof.isEmpty {
            w.u8(UInt8(proof.count))
            for g in proof { w.long(g.encoded) }
        }
        return w.bytes
    }

    public init(decoding bytes: [UInt8], limits: Limits = .default) throws(Refusal) {
        var r = ByteReader(bytes)
        self = try Revocation.read(from: &r, limits: limits)
        try r.expectEnd("revocation")
    }

    static func read(from r: inout ByteReader, limits: Limits) throws(Refusal) -> Revocation {
        let start = r.offset
        try DomainTag.read(DomainTag.revocation, kind: "revocation", from: &r)
        let cluster = try r.publicKey("cluster id")
        let grantID = try r.hash("grant id")
        let revokedAt = try r.u64("revocation time")
        let signer = try r.publicKey("signer")
        let signed = r.consumed(since: start)
        let signature = try r.signature("revocation signature")
        let grantBytes = try r.long("revoked grant", max: 64 * 1024)
        let grant = grantBytes.isEmpty ? nil : try Grant(decoding: grantBytes, limits: limits, checkingPatterns: false)
        var proof: [Grant] = []
        if !r.isAtEnd {
            let count = Int(try r.u8("proof length"))
            guard (1...limits.maxChainLength).contains(count) else {
                throw Refusal(.malformed, "a revocation's proof holds 1 to \(limits.maxChainLength) grants, not \(count)")
            }
            for _ in 0..<count { proof.append(try Grant(decoding: try r.long("proof grant", max: 64 * 1024), limits: limits, checkingPatterns: false)) }
        }
        return Revocation(
            cluster: cluster, grantID: grantID, revokedAt: revokedAt, signer: signer, signature: signature,
            grant: grant, proof: proof, signedBytes: signed)
    }

    /// Checks the signature and that the signer may revoke this grant: the root may revoke any
    /// grant; anyone else only a grant it issued, which must travel with the revocation, and only
    /// while it had the power to issue grants: `proof` must hold a chain of delegating grants from
    /// the root to the signer, valid at `revokedAt`. Cheapest first: cluster, shape, the signer's
    /// own signature, then the attached grant, then the proof. Revocation is not consulted (a
    /// revoked revoker's earlier revocations stand, and every node reaches the same verdict).
    public func verify(using search: ChainSearch) throws(Refusal) {
        let root = search.root
        guard cluster == root else {
            throw Refusal(.noAuthority, "revocation is for cluster \(cluster.fingerprint), this is \(root.fingerprint)")
        }
        if let grant, grant.id != grantID {
            throw Refusal(.malformed, "attached grant \(grant.id.hex.prefix(16)) is not the revoked grant \(grantID.hex.prefix(16))")
        }
        guard signer.verifies(signature, over: signedBytes) else {
            throw Refusal(.badSignature, "revocation signature does not verify")
        }
        if signer == root { return }
        guard let grant else {
            throw Refusal(.noAuthority, "a revocation not signed by the root must carry the revoked grant")
        }
        guard grant.issuer == signer else {
            throw Refusal(.noAuthority, "only the grant's issuer or the root may revoke it")
        }
        guard search.cache.signatureIsValid(grant) else {
            throw Refusal(.badSignature, "the attached grant's signature does not verify")
        }
        guard search.delegation(to: signer, atMs: revokedAt, pool: proof) != nil else {
            throw Refusal(
                .noAuthority,
                "the revoker \(signer.fingerprint) shows no chain of delegating grants from the root valid at \(RFC3339.format(ms: revokedAt)); a revocation not signed by the root must carry the revoker's own grants as proof")
        }
    }

    public static func == (a: Revocation, b: Revocation) -> Bool { a.digest == b.digest && a.signature == b.signature }
    public func hash(into h: inout Hasher) { h.combine(digest) }
}
