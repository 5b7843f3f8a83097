/// What to do next at one prefix of a diff, decided from the two sides' views there.
public enum MerkleDiffStep: Sendable, Equatable {
    /// Both sides are internal: compare these children next (those whose hashes differ, ascending).
    case descend([NibblePath])
    /// Both sides gave entries: these ids (ascending) exist on one side only or differ in digest.
    case differingIds([Hash256])
    /// One side is internal and the other is not: get the internal side's entries under this
    /// prefix (`MerkleReader.entriesView`) and step again. The internal side covers more than B
    /// entries and the other at most B, so those entries number at most B plus the differences.
    case needEntries

    /// Node-hash comparisons this step made: 16 child pairs when descending, none otherwise.
    public var hashComparisons: Int {
        if case .descend = self { return MerkleInternalNode.childCount }
        return 0
    }
}

/// Finds the entries on which two summaries differ, visiting only the paths towards differences.
public enum MerkleDiff {
    /// Compares two views of the same prefix. Pure, so a networked reconciliation can drive it one
    /// message at a time with the remote views it receives (check them with
    /// `MerkleNodeView.isWellFormed` first; malformed views give meaningless but safe answers).
    public static func step(prefix: NibblePath, local: MerkleNodeView, remote: MerkleNodeView) -> MerkleDiffStep {
        switch (local, remote) {
        case (.internal(let localChildren), .internal(let remoteChildren)) where prefix.depth < NibblePath.maxDepth:
            var differing: [NibblePath] = []
            for nibble in 0..<MerkleInternalNode.childCount
            where child(nibble, of: localChildren) != child(nibble, of: remoteChildren) {
                differing.append(prefix.child(UInt8(nibble)))
            }
            return .descend(differing)
        case (.internal, _), (_, .internal):
            return .needEntries
        default:
            return .differingIds(differingIds(entries(of: local), entries(of: remote)))
        }
    }

    /// Ids present on one side only or with different digests, from two id-sorted lists, ascending.
    public static func differingIds(_ local: [MerkleEntry], _ remote: [MerkleEntry]) -> [Hash256] {
        var ids: [Hash256] = []
        var l = local.startIndex
        var r = remote.startIndex
        while l < local.endIndex, r < remote.endIndex {
            if local[l].id < remote[r].id {
                ids.append(local[l].id)
                l += 1
            } else if remote[r].id < local[l].id {
                ids.append(remote[r].id)
                r += 1
            } else {
                if local[l].digest != remote[r].digest { ids.append(local[l].id) }
                l += 1
                r += 1
            }
        }
        ids.append(contentsOf: local[l...].map(\.id))
        ids.append(contentsOf: remote[r...].map(\.id))
        return ids
    }

    /// The ids whose entries differ between two summaries (ascending), and the number of node-hash
    /// comparisons it took: 1 for the roots plus 16 per node that is internal on both sides and
    /// differs. Each such node lies above some differing id, so with d differences and internal
    /// nodes no deeper than L − 1 this is at most 1 + 16·d·L — O(d·log n) for random ids.
    public static func differences(
        _ a: inout some MerkleBackend, _ b: inout some MerkleBackend
    ) throws -> (ids: [Hash256], comparisons: Int) {
        let rootA = try MerkleReader.view(at: .root, in: &a)
        let rootB = try MerkleReader.view(at: .root, in: &b)
        var comparisons = 1
        if rootA.hash == rootB.hash { return ([], comparisons) }
        var ids: [Hash256] = []
        try walk(.root, rootA, rootB, &a, &b, &ids, &comparisons)
        return (ids, comparisons)
    }

    /// Depth-first in nibble order, so ids come out ascending without sorting.
    private static func walk<A: MerkleBackend, B: MerkleBackend>(
        _ prefix: NibblePath, _ viewA: MerkleNodeView, _ viewB: MerkleNodeView,
        _ a: inout A, _ b: inout B, _ ids: inout [Hash256], _ comparisons: inout Int
    ) throws {
        var next = step(prefix: prefix, local: viewA, remote: viewB)
        if next == .needEntries {
            let entriesA = isInternal(viewA) ? try MerkleReader.entriesView(under: prefix, in: &a) : viewA
            let entriesB = isInternal(viewB) ? try MerkleReader.entriesView(under: prefix, in: &b) : viewB
            next = step(prefix: prefix, local: entriesA, remote: entriesB)
        }
        comparisons += next.hashComparisons
        switch next {
        case .descend(let children):
            for child in children {
                try walk(
                    child, MerkleReader.view(at: child, in: &a), MerkleReader.view(at: child, in: &b),
                    &a, &b, &ids, &comparisons)
            }
        case .differingIds(let found):
            ids.append(contentsOf: found)
        case .needEntries:
            preconditionFailure("entry views never need entries")
        }
    }

    private static func child(_ index: Int, of children: [Hash256]) -> Hash256 {
        children.indices.contains(index) ? children[index] : .zero
    }

    private static func entries(of view: MerkleNodeView) -> [MerkleEntry] {
        if case .leaf(let entries) = view { return entries }
        return []
    }

    private static func isInternal(_ view: MerkleNodeView) -> Bool {
        if case .internal = view { return true }
        return false
    }
}
