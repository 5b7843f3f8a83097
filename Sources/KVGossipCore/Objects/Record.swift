/// A value or a tombstone for one key, signed by the entity that wrote it, with the grants that
/// prove its authority (Docs/contract.md §Signed objects).
public struct Record: Hashable, Sendable {
    public enum Kind: UInt8, Sendable, Comparable, Codable {
        case value = 0
        case tombstone = 1
        public static func < (a: Kind, b: Kind) -> Bool { a.rawValue < b.rawValue }
    }

    public let cluster: PublicKey
    public let key: Key
    public let kind: Kind
    public let value: [UInt8]
    /// The hybrid logical clock value (Docs/contract.md §Ordering).
    public let timestamp: HLC
    public let signer: PublicKey
    public let signature: Signature
    /// Unsigned: grants offered as proof. Pruned by revocations without touching the signature.
    public let pool: [Grant]

    /// BLAKE2b-256 of the value as carried in the signed bytes.
    public let valueHash: Hash256
    public let signedBytes: [UInt8]
    /// BLAKE2b-256 of the signed bytes: the final tie-break of the ordering and the record's identity.
    public let digest: Hash256
    /// Made by the signing initializer in this process: its signature comes from a key pair derived
    /// from one seed and its value hash from its value, so checking them again can only fail if
    /// memory or libsodium did. Every record decoded from bytes (a peer's, a client's, the store's)
    /// is false and verified in full. Not part of `==`, nor of the public API.
    let signedHere: Bool

    /// Mints (signs) a record. Tombstones carry no value.
    public init(
        cluster: PublicKey, key: Key, kind: Kind, value: [UInt8], timestamp: HLC, signer: SigningKey, pool: [Grant]
    ) {
        precondition(kind == .value || value.isEmpty, "a tombstone has no value")
        let valueHash = Hash256.of(value)
        let signed = Record.encodeSigned(
            cluster: cluster, key: key, kind: kind, valueHash: valueHash, timestamp: timestamp, signer: signer.publicKey)
        self.init(
            cluster: cluster, key: key, kind: kind, value: value, timestamp: timestamp, signer: signer.publicKey,
            signature: signer.sign(signed), pool: pool, valueHash: valueHash, signedBytes: signed, signedHere: true)
    }

    private init(
        cluster: PublicKey, key: Key, kind: Kind, value: [UInt8], timestamp: HLC, signer: PublicKey,
        signature: Signature, pool: [Grant], valueHash: Hash256, signedBytes: [UInt8], signedHere: Bool = false
    ) {
        self.cluster = cluster
        self.key = key
        self.kind = kind
        self.value = value
        self.timestamp = timestamp
        self.signer = signer
        self.signature = signature
        self.pool = pool
        self.valueHash = valueHash
        self.signedBytes = signedBytes
        digest = Hash256.of(signedBytes)
        self.signedHere = signedHere
    }

    /// The same signed record with a different (e.g. pruned) pool.
    public func withPool(_ pool: [Grant]) -> Record {
        Record(
            cluster: cluster, key: key, kind: kind, value: value, timestamp: timestamp, signer: signer,
            signature: signature, pool: pool, valueHash: valueHash, signedBytes: signedBytes, signedHere: signedHere)
    }

    public var version: RecordVersion { RecordVersion(timestamp: timestamp, kind: kind, digest: digest) }

    static func encodeSigned(
        cluster: PublicKey, key: Key, kind: Kind, valueHash: Hash256, timestamp: HLC, signer: PublicKey
    ) -> [UInt8] {
        var w = ByteWriter(capacity: 200)
        w.fixed(DomainTag.record)
        w.fixed(cluster.bytes)
        w.short(Array(key.path.utf8))
        w.u8(kind.rawValue)
        w.fixed(valueHash.bytes)
        w.u64(timestamp.raw)
        w.fixed(signer.bytes)
        return w.bytes
    }

    /// Signed bytes, signature, value (u32 length), then the pool (u8 count, each grant u32 length).
    public var encoded: [UInt8] {
        var w = ByteWriter(capacity: signedBytes.count + 64 + value.count + pool.count * 300)
        w.fixed(signedBytes)
        w.fixed(signature.bytes)
        w.long(value)
        w.u8(UInt8(pool.count))
        for g in pool { w.long(g.encoded) }
        return w.bytes
    }

    public init(decoding bytes: [UInt8], limits: Limits = .default) throws(Refusal) {
        var r = ByteReader(bytes)
        self = try Record.read(from: &r, limits: limits)
        try r.expectEnd("record")
    }

    static func read(from r: inout ByteReader, limits: Limits) throws(Refusal) -> Record {
        let start = r.offset
        try DomainTag.read(DomainTag.record, kind: "record", from: &r)
        let cluster = try r.publicKey("cluster id")
        let rawKey = try r.short("key", max: Key.maxBytes)
        guard let keyText = String(validating: rawKey, as: UTF8.self) else { throw Refusal(.invalidKey, "key is not UTF-8") }
        let key: Key
        do { key = try Key(keyText) } catch { throw Refusal(.invalidKey, error.description) }
        guard let kind = Kind(rawValue: try r.u8("kind")) else { throw Refusal(.malformed, "unknown record kind") }
        let valueHash = try r.hash("value hash")
        let timestamp = HLC(raw: try r.u64("timestamp"))
        let signer = try r.publicKey("signer")
        let signed = r.consumed(since: start)
        let signature = try r.signature("record signature")
        let value = try r.long("value", max: limits.maxValueBytes)
        guard kind == .value || value.isEmpty else { throw Refusal(.malformed, "a tombstone carries a value") }
        let poolCount = Int(try r.u8("pool size"))
        guard poolCount <= limits.maxPoolGrants else {
            throw Refusal(.tooLarge, "pool has \(poolCount) grants, limit \(limits.maxPoolGrants)")
        }
        var pool: [Grant] = []
        pool.reserveCapacity(poolCount)
        var poolBytes = 0
        for _ in 0..<poolCount {
            let bytes = try r.long("pool grant", max: 64 * 1024)
            poolBytes += bytes.count
            guard poolBytes <= limits.maxPoolBytes else {
                throw Refusal(.tooLarge, "pool grants exceed \(limits.maxPoolBytes) bytes")
            }
            var inner = ByteReader(bytes)
            pool.append(try Grant.read(from: &inner, limits: limits, checkingPatterns: false))
            try inner.expectEnd("pool grant")
        }
        return Record(
            cluster: cluster, key: key, kind: kind, value: value, timestamp: timestamp, signer: signer,
            signature: signature, pool: pool, valueHash: valueHash, signedBytes: signed)
    }

    /// The value matches its hash and the signer's signature covers the signed bytes. A record
    /// signed here holds both by construction (`signedHere`): a save through the mount used to
    /// verify the signature it had just made, a tenth of the agent's CPU per save.
    public var signatureIsValid: Bool {
        signedHere || (Hash256.of(value) == valueHash && signer.verifies(signature, over: signedBytes))
    }

    /// The same record byte for byte: `==` and also the signatures of the pool's grants (a grant's
    /// id covers its body, not its signature). Work done on one copy (its checks) may stand for
    /// another only when this holds.
    public func isIdentical(to other: Record) -> Bool {
        self == other && zip(pool, other.pool).allSatisfy { $0.signature == $1.signature }
    }

    public static func == (a: Record, b: Record) -> Bool {
        a.digest == b.digest && a.signature == b.signature && a.value == b.value && a.pool.map(\.id) == b.pool.map(\.id)
    }
    public func hash(into h: inout Hasher) { h.combine(digest) }
}
