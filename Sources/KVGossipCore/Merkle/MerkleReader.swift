/// Reads the summary as views, for diffing locally or answering a peer's requests.
/// Needs no leaf limit: the stored internal nodes already fix the shape.
public enum MerkleReader {
    /// The node at `prefix`: its children if stored as internal, else the entries under it
    /// (which is also the right answer for a prefix lying below a leaf).
    public static func view(at prefix: NibblePath, in backend: inout some MerkleBackend) throws -> MerkleNodeView {
        if let node = try backend.internalNode(at: prefix) {
            return .internal(node.children)
        }
        return try entriesView(under: prefix, in: &backend)
    }

    /// The entries under `prefix` whatever the shape there: what the diff asks of the internal side
    /// when the other side is a leaf.
    public static func entriesView(under prefix: NibblePath, in backend: inout some MerkleBackend) throws
        -> MerkleNodeView
    {
        MerkleNodeView(entries: try backend.entries(under: prefix))
    }

    /// The hash of the node at `prefix`; at `.root`, the summary's root hash.
    public static func hash(at prefix: NibblePath, in backend: inout some MerkleBackend) throws -> Hash256 {
        try view(at: prefix, in: &backend).hash
    }
}
