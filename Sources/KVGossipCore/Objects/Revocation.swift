/// A signed statement "grant G is no longer accepted" (Docs/contract.md §Revocation), by the grant's
/// issuer or the root.
///
/// The revoked grant itself may travel alongside (unsigned) so that a node that never saw the grant
/// can still check that the signer really was its issuer.
public struct Revocation: Hashable, Sendable {
    public let cluster: PublicKey
    public let grantID: Hash256
    /// Milliseconds since the Unix epoch; informative (a revocation applies whatever the time).
    public let revokedAt: UInt64
    public let signer: PublicKey
    public let signature: Signature
    public let grant: Grant?

    public let signedBytes: [UInt8]
    /// BLAKE2b-256 of the signed bytes: the revocation's entry in the Merkle summary.
    public let digest: Hash256

    public init(cluster: PublicKey, grant: Grant, revokedAt: UInt64, signer: SigningKey) {
        let signed = Revocation.encodeSigned(cluster: cluster, grantID: grant.id, revokedAt: revokedAt, signer: signer.publicKey)
        self.init(
            cluster: cluster, grantID: grant.id, revokedAt: revokedAt, signer: signer.publicKey,
            signature: signer.sign(signed), grant: grant, signedBytes: signed)
    }

    /// A revocation by grant id alone; only useful when the signer is the root.
    public init(cluster: PublicKey, grantID: Hash256, revokedAt: UInt64, signer: SigningKey) {
        let signed = Revocation.encodeSigned(cluster: cluster, grantID: grantID, revokedAt: revokedAt, signer: signer.publicKey)
        self.init(
            cluster: cluster, grantID: grantID, revokedAt: revokedAt, signer: signer.publicKey,
            signature: signer.sign(signed), grant: nil, signedBytes: signed)
    }

    private init(
        cluster: PublicKey, grantID: Hash256, revokedAt: UInt64, signer: PublicKey, signature: Signature,
        grant: Grant?, signedBytes: [UInt8]
    ) {
        self.cluster = cluster
        self.grantID = grantID
        self.revokedAt = revokedAt
        self.signer = signer
        self.signature = signature
        self.grant = grant
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

    /// Signed bytes, signature, then the revoked grant with a u32 length (0 when absent).
    public var encoded: [UInt8] {
        var w = ByteWriter(capacity: signedBytes.count + 300)
        w.fixed(signedBytes)
        w.fixed(signature.bytes)
        w.long(grant?.encoded ?? [])
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
        let grant = grantBytes.isEmpty ? nil : try Grant(decoding: grantBytes, limits: limits)
        return Revocation(
            cluster: cluster, grantID: grantID, revokedAt: revokedAt, signer: signer, signature: signature,
            grant: grant, signedBytes: signed)
    }

    /// Checks the signature and that the signer may revoke this grant: the root may revoke any grant;
    /// anyone else only a grant it issued, which must travel with the revocation to show it.
    public func verify(root: PublicKey) throws(Refusal) {
        guard cluster == root else {
            throw Refusal(.noAuthority, "revocation is for cluster \(cluster.fingerprint), this is \(root.fingerprint)")
        }
        guard signer.verifies(signature, over: signedBytes) else {
            throw Refusal(.badSignature, "revocation signature does not verify")
        }
        if let grant, grant.id != grantID {
            throw Refusal(.malformed, "attached grant \(grant.id.hex.prefix(16)) is not the revoked grant \(grantID.hex.prefix(16))")
        }
        if signer == root { return }
        guard let grant else {
            throw Refusal(.noAuthority, "a revocation not signed by the root must carry the revoked grant")
        }
        guard grant.issuer == signer, grant.signatureIsValid else {
            throw Refusal(.noAuthority, "only the grant's issuer or the root may revoke it")
        }
    }

    public static func == (a: Revocation, b: Revocation) -> Bool { a.digest == b.digest && a.signature == b.signature }
    public func hash(into h: inout Hasher) { h.combine(digest) }
}
