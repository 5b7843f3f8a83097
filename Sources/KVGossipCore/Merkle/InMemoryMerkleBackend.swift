/// A `MerkleBackend` held entirely in memory: the internal nodes in a dictionary and the entries in
/// a sorted, chunked store. For tests, benchmarks and tools; hosts persist in SQLite.
///
/// Change an entry with `upsert` or `remove`, collect `MerkleChange(id:countDelta:)` from the
/// returned deltas, then pass them to `MerkleTrie.apply` — the same order of work as with a
/// database table.
public struct InMemoryMerkleBackend: MerkleBackend, Sendable {
    /// Every stored internal node, by position.
    public private(set) var internalNodes: [NibblePath: MerkleInternalNode] = [:]
    private var store = SortedEntryStore()

    /// An empty backend.
    public init() {}

    /// A backend holding `entries` (in any order; of repeated ids the last wins) and no internal
    /// nodes yet: follow with `MerkleTrie.build(from: backend.allEntries, into: &backend)`.
    public init(entries: [MerkleEntry]) {
        store = SortedEntryStore(items: entries.map(Self.item))
    }

    /// The number of entries.
    public var entryCount: Int { store.count }

    /// All entries, sorted by id.
    public var allEntries: [MerkleEntry] { store.allItems.map(Self.entry) }

    /// The digest recorded for `id`, if present.
    public func digest(of id: Hash256) -> Hash256? {
        store.digest(of: PackedWords256(id))?.hash256
    }

    /// Inserts the entry or replaces its digest, and returns the count delta for the
    /// `MerkleChange` to pass to `MerkleTrie.apply`: 1 if the id is new, else 0.
    @discardableResult
    public mutating func upsert(_ entry: MerkleEntry) -> Int {
        store.upsert(Self.item(entry)) == .inserted ? 1 : 0
    }

    /// Removes the entry with `id`, and returns the count delta for the `MerkleChange` to pass to
    /// `MerkleTrie.apply`: -1, or 0 if there was no such entry.
    @discardableResult
    public mutating func remove(_ id: Hash256) -> Int {
        store.remove(PackedWords256(id)) ? -1 : 0
    }

    /// The greatest depth of a leaf position: one more than the deepest internal node, 0 when
    /// the root is a leaf. Scans the node map, so meant for tests and measurements.
    public var maxDepth: Int {
        internalNodes.keys.reduce(-1) { max($0, $1.depth) } + 1
    }

    // MARK: MerkleBackend

    public func internalNode(at prefix: NibblePath) -> MerkleInternalNode? {
        internalNodes[prefix]
    }

    public mutating func setInternalNode(_ node: MerkleInternalNode, at prefix: NibblePath) {
        internalNodes[prefix] = node
    }

    /// Follows stored nodes down from `prefix` rather than scanning every key; in a consistent trie
    /// nothing is stored below a position that is not internal, so this finds them all.
    public mutating func removeInternalNodes(atOrBelow prefix: NibblePath) {
        if prefix.depth == 0 {
            internalNodes.removeAll()
            return
        }
        guard internalNodes.removeValue(forKey: prefix) != nil, prefix.depth < NibblePath.maxDepth else { return }
        for nibble in 0..<UInt8(MerkleInternalNode.childCount) {
            removeInternalNodes(atOrBelow: prefix.child(nibble))
        }
    }

    public func entries(under prefix: NibblePath) -> [MerkleEntry] {
        store.items(from: prefix.lowerWords, through: prefix.upperWords).map(Self.entry)
    }

    private static func item(_ entry: MerkleEntry) -> SortedEntryStore.Item {
        SortedEntryStore.Item(id: PackedWords256(entry.id), digest: PackedWords256(entry.digest))
    }

    private static func entry(_ item: SortedEntryStore.Item) -> MerkleEntry {
        MerkleEntry(id: item.id.hash256, digest: item.digest.hash256)
    }
}
