/// The node hash functions. Each kind of node hashes under its own leading tag byte, so a leaf can
/// never be mistaken for an internal node, and the empty set is the all-zero hash, which no
/// BLAKE2b output is expected to equal.
public enum MerkleHashing {
    /// Tag of a leaf: ASCII 'L'.
    public static let leafTag: UInt8 = 0x4C
    /// Tag of an internal node: ASCII 'I'.
    public static let internalTag: UInt8 = 0x49

    /// BLAKE2b-256('L' ‖ id₁ ‖ digest₁ ‖ … ‖ idₖ ‖ digestₖ) over entries sorted by id;
    /// `Hash256.zero` when there are none.
    public static func leafHash<Entries: Collection<MerkleEntry>>(_ entries: Entries) -> Hash256 {
        if entries.isEmpty { return .zero }
        var message = [UInt8]()
        message.reserveCapacity(1 + entries.count * 2 * Hash256.byteCount)
        message.append(leafTag)
        for entry in entries {
            entry.id.withUnsafeBytes { message.append(contentsOf: $0) }
            entry.digest.withUnsafeBytes { message.append(contentsOf: $0) }
        }
        return Hash256.of(message)
    }

    /// BLAKE2b-256('I' ‖ child₀ ‖ … ‖ child₁₅). Any other number of children (only a malformed
    /// view from a peer can have one) still hashes, to a value no real node has, rather than trap.
    public static func internalHash(_ children: [Hash256]) -> Hash256 {
        var message = [UInt8]()
        message.reserveCapacity(1 + children.count * Hash256.byteCount)
        message.append(internalTag)
        for child in children {
            child.withUnsafeBytes { message.append(contentsOf: $0) }
        }
        return Hash256.of(message)
    }
}
