/// How records and revocations enter the Merkle summary (Docs/contract.md §Anti-entropy). Both sides of a
/// sync must derive exactly the same entries, so this lives in the core.
public enum SummaryEntries {
    /// Position: BLAKE2b of the key, so one entry per key. Digest covers key, kind, timestamp and
    /// the record digest (tombstones included), not the unsigned pool.
    public static func entry(for record: Record) -> MerkleEntry {
        MerkleEntry(id: keyHash(record.key), digest: entryDigest(record))
    }

    public static func keyHash(_ key: Key) -> Hash256 { Hash256.of(Array(key.path.utf8)) }

    static func entryDigest(_ record: Record) -> Hash256 {
        var w = ByteWriter(capacity: 100 + record.key.path.utf8.count)
        w.u8(UInt8(ascii: "R"))
        w.short(Array(record.key.path.utf8))
        w.u8(record.kind.rawValue)
        w.u64(record.timestamp.raw)
        w.fixed(record.digest.bytes)
        return Hash256.of(w.bytes)
    }

    /// Position: the revoked grant's id (a node keeps one revocation per grant).
    public static func entry(for revocation: Revocation) -> MerkleEntry {
        MerkleEntry(id: revocation.grantID, digest: revocation.digest)
    }

    /// The tree hash that nodes compare: one root over both summaries.
    public static func treeHash(records: Hash256, revocations: Hash256) -> Hash256 {
        var w = ByteWriter(capacity: 90)
        w.fixed(Array("kvgossip/tree/v1\u{0}".utf8))
        w.fixed(records.bytes)
        w.fixed(revocations.bytes)
        return Hash256.of(w.bytes)
    }
}
