/// One member of the summarised set: where it sits (`id`) and what it currently is (`digest`).
/// For records the caller derives `id` from the key and `digest` from the key, kind, timestamp and
/// record digest; the trie only ever sees the two hashes. A set holds at most one entry per id.
public struct MerkleEntry: Hashable, Sendable {
    public var id: Hash256
    public var digest: Hash256

    public init(id: Hash256, digest: Hash256) {
        self.id = id
        self.digest = digest
    }
}

/// One change the caller has already made to its entry table, reported to `MerkleTrie.apply`.
public struct MerkleChange: Hashable, Sendable {
    public var id: Hash256
    /// +1 the id was inserted, -1 it was removed, 0 its digest was replaced.
    public var countDelta: Int

    public init(id: Hash256, countDelta: Int) {
        self.id = id
        self.countDelta = countDelta
    }

    public static func inserted(_ id: Hash256) -> MerkleChange { MerkleChange(id: id, countDelta: 1) }
    public static func removed(_ id: Hash256) -> MerkleChange { MerkleChange(id: id, countDelta: -1) }
    public static func replaced(_ id: Hash256) -> MerkleChange { MerkleChange(id: id, countDelta: 0) }
}

/// What a backend persists for an internal position: how many entries lie below it (so the
/// split/collapse decision needs no scan) and the hashes of its 16 children. Leaves are not stored;
/// their hashes live in the parent's `children`.
public struct MerkleInternalNode: Hashable, Sendable {
    public static let childCount = 16

    public var count: Int
    /// Exactly 16 hashes, `Hash256.zero` for an empty child.
    public var children: [Hash256]

    public init(count: Int, children: [Hash256]) {
        precondition(children.count == Self.childCount, "an internal node has 16 children")
        self.count = count
        self.children = children
    }

    /// The node's hash, as its parent records it.
    public var hash: Hash256 { MerkleHashing.internalHash(children) }
}

/// Storage for the trie's internal nodes plus read access to the caller's entries.
/// The SQLite store implements it over its tables; `InMemoryMerkleBackend` serves tests.
/// Methods are `mutating` so that value-type backends may cache or count.
public protocol MerkleBackend {
    /// The internal node at `prefix`, or nil if that position is a leaf (or empty).
    mutating func internalNode(at prefix: NibblePath) throws -> MerkleInternalNode?
    mutating func setInternalNode(_ node: MerkleInternalNode, at prefix: NibblePath) throws
    /// Removes every stored internal node at `prefix` or below it.
    mutating func removeInternalNodes(atOrBelow prefix: NibblePath) throws
    /// Current entries whose id starts with `prefix`, sorted by id (the caller's table already
    /// reflects the changes being applied).
    mutating func entries(under prefix: NibblePath) throws -> [MerkleEntry]
}

/// The content of one trie position, as a host reports it to a peer during reconciliation.
/// Below a leaf a position has no node of its own; its view is then the leaf's entries under it,
/// which is exactly the canonical node for that subset, so views compare at any prefix.
public enum MerkleNodeView: Sendable, Equatable {
    case empty
    /// Entries sorted by id, at most the leaf limit of them.
    case leaf([MerkleEntry])
    /// The 16 child hashes.
    case `internal`([Hash256])

    /// `.empty` for no entries, else `.leaf`.
    public init(entries: [MerkleEntry]) {
        self = entries.isEmpty ? .empty : .leaf(entries)
    }

    /// The position's hash: `Hash256.zero`, the leaf hash or the internal hash.
    public var hash: Hash256 {
        switch self {
        case .empty: return .zero
        case .leaf(let entries): return MerkleHashing.leafHash(entries)
        case .internal(let children): return MerkleHashing.internalHash(children)
        }
    }

    /// Whether a view received from elsewhere has the shape the diff relies on: 16 children, or
    /// 1...`maxEntries` entries strictly ascending by id and all under `prefix`. Pass the leaf
    /// limit for node views, and a larger allowance for the entries answering `.needEntries`.
    public func isWellFormed(at prefix: NibblePath, maxEntries: Int) -> Bool {
        switch self {
        case .empty:
            return true
        case .internal(let children):
            return children.count == MerkleInternalNode.childCount
        case .leaf(let entries):
            guard !entries.isEmpty, entries.count <= maxEntries else { return false }
            guard entries.allSatisfy({ prefix.contains($0.id) }) else { return false }
            return zip(entries, entries.dropFirst()).allSatisfy { $0.id < $1.id }
        }
    }
}

/// Failures of `MerkleTrie`. After a throw the backend may be partly updated: run `apply` inside
/// the caller's transaction and roll back, or rebuild with `MerkleTrie.build`.
public enum MerkleTrieError: Error, Sendable, Equatable {
    /// The leaf limit must be at least 1.
    case invalidLeafLimit(Int)
    /// `build` was given two entries with the same id.
    case duplicateId(Hash256)
    /// The backend returned entries under `prefix` that were not strictly ascending by id.
    case entriesNotSorted(prefix: NibblePath)
    /// The stored count plus the batch's deltas disagree with the entries actually present:
    /// the caller's deltas were wrong or the stored nodes are stale.
    case countMismatch(prefix: NibblePath, expected: Int, found: Int)
}
