import Testing

import KVGossipCore
import KVGossipTestSupport

/// Random Merkle material from the shared seeded generator, so every Merkle test is reproducible.
extension SeededRandom {
    mutating func hash() -> Hash256 {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        for _ in 0..<4 {
            withUnsafeBytes(of: next().bigEndian) { bytes.append(contentsOf: $0) }
        }
        return Hash256(bytes: bytes)!
    }

    /// A random id whose first nibbles are `prefix`.
    mutating func id(sharing prefix: [UInt8]) -> Hash256 {
        var bytes = hash().bytes
        for (index, nibble) in prefix.enumerated() {
            let byte = index / 2
            bytes[byte] = index % 2 == 0 ? (bytes[byte] & 0x0F) | (nibble << 4) : (bytes[byte] & 0xF0) | nibble
        }
        return Hash256(bytes: bytes)!
    }

    mutating func entry() -> MerkleEntry { MerkleEntry(id: hash(), digest: hash()) }

    mutating func entries(_ count: Int) -> [MerkleEntry] { (0..<count).map { _ in entry() } }
}

/// Helpers shared by the Merkle test files.
enum MerkleFixtures {
    /// A backend holding `entries` with its trie built from scratch, and the root hash.
    static func built(
        _ entries: [MerkleEntry], leafLimit: Int = MerkleTrie.defaultLeafLimit
    ) throws -> (backend: InMemoryMerkleBackend, root: Hash256) {
        var backend = InMemoryMerkleBackend(entries: entries)
        let root = try MerkleTrie.build(from: backend.allEntries, into: &backend, leafLimit: leafLimit)
        return (backend, root)
    }

    /// The number of depths holding internal nodes (the deepest internal node's depth + 1).
    static func internalLevels(_ backend: InMemoryMerkleBackend) -> Int {
        backend.maxDepth
    }

    /// The depth of the leaf position holding `id`: the length of its path of internal nodes.
    static func leafDepth(of id: Hash256, in backend: InMemoryMerkleBackend) -> Int {
        var prefix = NibblePath.root
        while backend.internalNodes[prefix] != nil {
            prefix = prefix.child(NibblePath.nibble(of: id, at: prefix.depth))
        }
        return prefix.depth
    }

    /// Up to five positions at which two node maps disagree, for compact failure messages
    /// (printing two whole tries is unreadable).
    static func differingNodes(
        _ a: [NibblePath: MerkleInternalNode], _ b: [NibblePath: MerkleInternalNode]
    ) -> [String] {
        Set(a.keys).union(b.keys).filter { a[$0] != b[$0] }.sorted().prefix(5).map(\.description)
    }

    static func hash(hex: String) -> Hash256 { Hash256(bytes: Hex.decode(hex)!)! }
}

/// Wraps a backend and counts the calls made to it.
struct CountingMerkleBackend: MerkleBackend {
    var inner: InMemoryMerkleBackend
    var calls = 0

    mutating func internalNode(at prefix: NibblePath) throws -> MerkleInternalNode? {
        calls += 1
        return inner.internalNode(at: prefix)
    }

    mutating func setInternalNode(_ node: MerkleInternalNode, at prefix: NibblePath) throws {
        calls += 1
        inner.setInternalNode(node, at: prefix)
    }

    mutating func removeInternalNodes(atOrBelow prefix: NibblePath) throws {
        calls += 1
        inner.removeInternalNodes(atOrBelow: prefix)
    }

    mutating func entries(under prefix: NibblePath) throws -> [MerkleEntry] {
        calls += 1
        return inner.entries(under: prefix)
    }
}

@Suite struct MerkleFixturesTests {
    @Test func generatorMatchesSplitMix64ReferenceSequence() {
        var random = SeededRandom(seed: 0)
        #expect(random.next() == 0xE220_A839_7B1D_CDAF)
        #expect(random.next() == 0x6E78_9E6A_A1B9_65F4)
        #expect(random.next() == 0x06C4_5D18_8009_454F)
    }

    @Test func craftedIdsKeepTheirPrefix() {
        var random = SeededRandom(seed: 1)
        let prefix: [UInt8] = [0xA, 0x1, 0xF, 0x0, 0x7]
        let id = random.id(sharing: prefix)
        #expect(NibblePath(nibbles: prefix)!.contains(id))
    }
}

extension InMemoryMerkleBackend {
    /// Upserts `entry` and returns the change to hand to `MerkleTrie.apply`.
    mutating func upsertChange(_ entry: MerkleEntry) -> MerkleChange {
        MerkleChange(id: entry.id, countDelta: upsert(entry))
    }

    /// Removes `id`, which the test expects to be present, and returns the change for `MerkleTrie.apply`.
    mutating func removeChange(_ id: Hash256, sourceLocation: SourceLocation = #_sourceLocation) -> MerkleChange {
        let delta = remove(id)
        #expect(delta == -1, "the id to remove is present", sourceLocation: sourceLocation)
        return MerkleChange(id: id, countDelta: delta)
    }
}
