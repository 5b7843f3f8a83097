/// Maintains the Merkle summary of a set of entries in a `MerkleBackend`.
///
/// Shape: the node at prefix p covers the entries whose id starts with p. It is a leaf when it
/// covers at most `leafLimit` entries (or p is a full id), otherwise an internal node with one
/// child per next nibble. Shape and hashes depend only on the set, never on the order changes
/// arrived in, so two hosts holding the same set agree on every node.
public enum MerkleTrie {
    /// The default leaf limit B.
    public static let defaultLeafLimit = 16

    /// Brings the stored internal nodes up to date after a batch of changes and returns the new
    /// root hash. The caller must already have applied every change to the entries its backend
    /// serves. Work is proportional to the union of the changed ids' paths (O(log n) nodes per
    /// change for random ids); each node on that union is read and written once.
    /// An id may appear more than once in a batch; its deltas add up.
    public static func apply(
        _ changes: [MerkleChange], to backend: inout some MerkleBackend, leafLimit: Int = defaultLeafLimit
    ) throws -> Hash256 {
        try validate(leafLimit: leafLimit)
        if changes.isEmpty {
            return try MerkleReader.hash(at: .root, in: &backend)
        }
        let sorted = changes.sorted { $0.id < $1.id }
        return try update(at: .root, changes: sorted[...], backend: &backend, leafLimit: leafLimit)
    }

    /// Discards every stored internal node and builds the trie for `entries` (in any order) from
    /// scratch, returning the root hash. `entries` should be exactly what the backend serves.
    public static func build(
        from entries: [MerkleEntry], into backend: inout some MerkleBackend, leafLimit: Int = defaultLeafLimit
    ) throws -> Hash256 {
        try validate(leafLimit: leafLimit)
        let sorted = entries.sorted { $0.id < $1.id }
        for (previous, next) in zip(sorted, sorted.dropFirst()) where previous.id == next.id {
            throw MerkleTrieError.duplicateId(next.id)
        }
        try backend.removeInternalNodes(atOrBelow: .root)
        return try buildSubtree(at: .root, entries: sorted[...], backend: &backend, leafLimit: leafLimit)
    }

    private static func validate(leafLimit: Int) throws {
        guard leafLimit >= 1 else { throw MerkleTrieError.invalidLeafLimit(leafLimit) }
    }

    private static func isLeaf(count: Int, at prefix: NibblePath, leafLimit: Int) -> Bool {
        count <= leafLimit || prefix.depth == NibblePath.maxDepth
    }

    /// Recomputes the node at `prefix`, all of whose `changes` (sorted by id) lie under it.
    private static func update<Backend: MerkleBackend>(
        at prefix: NibblePath, changes: ArraySlice<MerkleChange>, backend: inout Backend, leafLimit: Int
    ) throws -> Hash256 {
        guard let node = try backend.internalNode(at: prefix) else {
            // A leaf or empty position: its entries are at most B plus this batch's inserts.
            let entries = try backend.entries(under: prefix)
            try checkSorted(entries, under: prefix)
            if isLeaf(count: entries.count, at: prefix, leafLimit: leafLimit) {
                return MerkleHashing.leafHash(entries)
            }
            return try buildSubtree(at: prefix, entries: entries[...], backend: &backend, leafLimit: leafLimit)
        }

        let newCount = node.count + changes.reduce(0) { $0 + $1.countDelta }
        if !isLeaf(count: newCount, at: prefix, leafLimit: leafLimit) {
            var children = node.children
            for (nibble, group) in groupedByNibble(changes, at: prefix.depth) {
                children[Int(nibble)] = try update(
                    at: prefix.child(nibble), changes: group, backend: &backend, leafLimit: leafLimit)
            }
            try backend.setInternalNode(MerkleInternalNode(count: newCount, children: children), at: prefix)
            return MerkleHashing.internalHash(children)
        }

        // Shrunk to a leaf: the subtree's nodes go, and its (at most B) entries are hashed directly.
        // Reading the entries first lets a wrong delta be reported before anything is removed.
        let entries = try backend.entries(under: prefix)
        guard entries.count == newCount else {
            throw MerkleTrieError.countMismatch(prefix: prefix, expected: newCount, found: entries.count)
        }
        try checkSorted(entries, under: prefix)
        try backend.removeInternalNodes(atOrBelow: prefix)
        return MerkleHashing.leafHash(entries)
    }

    /// Builds the node at `prefix` for `entries` (sorted, unique, all under `prefix`), storing the
    /// internal nodes it creates, and returns its hash.
    private static func buildSubtree<Backend: MerkleBackend>(
        at prefix: NibblePath, entries: ArraySlice<MerkleEntry>, backend: inout Backend, leafLimit: Int
    ) throws -> Hash256 {
        if isLeaf(count: entries.count, at: prefix, leafLimit: leafLimit) {
            return MerkleHashing.leafHash(entries)
        }
        var children = [Hash256](repeating: .zero, count: MerkleInternalNode.childCount)
        for (nibble, group) in groupedByNibble(entries, at: prefix.depth) {
            children[Int(nibble)] = try buildSubtree(
                at: prefix.child(nibble), entries: group, backend: &backend, leafLimit: leafLimit)
        }
        try backend.setInternalNode(MerkleInternalNode(count: entries.count, children: children), at: prefix)
        return MerkleHashing.internalHash(children)
    }

    private static func checkSorted(_ entries: [MerkleEntry], under prefix: NibblePath) throws {
        for (previous, next) in zip(entries, entries.dropFirst()) where !(previous.id < next.id) {
            throw MerkleTrieError.entriesNotSorted(prefix: prefix)
        }
    }
}

/// Something positioned by an id, so batches of changes and runs of entries split the same way.
private protocol IdentifiedById {
    var id: Hash256 { get }
}

extension MerkleChange: IdentifiedById {}
extension MerkleEntry: IdentifiedById {}

/// Splits a run sorted by id into the maximal sub-runs sharing nibble `depth`; sorting makes
/// each sub-run contiguous, so this is one pass with no copying.
private func groupedByNibble<Element: IdentifiedById>(
    _ run: ArraySlice<Element>, at depth: Int
) -> [(nibble: UInt8, run: ArraySlice<Element>)] {
    var groups: [(nibble: UInt8, run: ArraySlice<Element>)] = []
    var start = run.startIndex
    while start < run.endIndex {
        let nibble = NibblePath.nibble(of: run[start].id, at: depth)
        var end = start + 1
        while end < run.endIndex, NibblePath.nibble(of: run[end].id, at: depth) == nibble {
            end += 1
        }
        groups.append((nibble, run[start..<end]))
        start = end
    }
    return groups
}
