import Testing

import KVGossipCore
import KVGossipTestSupport

/// Known-answer vectors; the expected digests were computed independently with Python's
/// `hashlib.blake2b(digest_size=32)` from the byte layout the design specifies.
@Suite struct MerkleHashingTests {
    let firstId = Hash256(bytes: [0x10] + [UInt8](repeating: 0x01, count: 31))!
    let firstDigest = Hash256(bytes: [UInt8](repeating: 0x11, count: 32))!
    let secondId = Hash256(bytes: [0xA0] + [UInt8](repeating: 0x02, count: 31))!
    let secondDigest = Hash256(bytes: [UInt8](repeating: 0x22, count: 32))!

    @Test func emptySetHashesToZero() throws {
        var backend = InMemoryMerkleBackend()
        #expect(try MerkleTrie.build(from: [], into: &backend) == Hash256.zero)
        #expect(try MerkleTrie.apply([], to: &backend) == Hash256.zero)
        #expect(try MerkleReader.hash(at: .root, in: &backend) == Hash256.zero)
        #expect(MerkleHashing.leafHash([MerkleEntry]()) == Hash256.zero)
        #expect(MerkleNodeView.empty.hash == Hash256.zero)
    }

    @Test func singleEntryIsATaggedLeaf() throws {
        let entry = MerkleEntry(id: Hash256(bytes: Array(0..<32))!, digest: Hash256(bytes: Array(32..<64))!)
        let expected = MerkleFixtures.hash(hex: "5ac759eb0e7c23c36ce750660cfef3fc461f3d973202b094b7e45d435adc30ab")
        #expect(MerkleHashing.leafHash([entry]) == expected)
        #expect(Hash256.of([0x4C] + entry.id.bytes + entry.digest.bytes) == expected)

        var backend = InMemoryMerkleBackend()
        let change = backend.upsertChange(entry)
        #expect(try MerkleTrie.apply([change], to: &backend) == expected)
        #expect(backend.internalNodes.isEmpty)
    }

    @Test func twoEntriesFormOneLeafUnderTheDefaultLimit() throws {
        let entries = [
            MerkleEntry(id: secondId, digest: secondDigest), MerkleEntry(id: firstId, digest: firstDigest),
        ]
        let expected = MerkleFixtures.hash(hex: "35b98b0fd983ab9db51e0fad5c1fe97f3946ac220d29ec609cca5f52bb747acc")
        #expect(try MerkleFixtures.built(entries).root == expected)
    }

    @Test func internalNodeHashesItsSixteenChildren() throws {
        let entries = [
            MerkleEntry(id: firstId, digest: firstDigest), MerkleEntry(id: secondId, digest: secondDigest),
        ]
        let expected = MerkleFixtures.hash(hex: "b607d2d9ee9b72d30c969f6c75b0f065c8821c2e50d9b820a3b88460c99e2ab0")
        let (backend, root) = try MerkleFixtures.built(entries, leafLimit: 1)
        #expect(root == expected)
        let node = try #require(backend.internalNodes[.root])
        #expect(node.count == 2)
        #expect(node.children[1] == MerkleHashing.leafHash([entries[0]]))
        #expect(node.children[10] == MerkleHashing.leafHash([entries[1]]))
        #expect(node.children.enumerated().allSatisfy { [1, 10].contains($0.offset) || $0.element == .zero })
        #expect(node.hash == expected)
    }

    @Test func leafAndInternalNeverShareAnEncoding() {
        // Sixteen children are 512 bytes, exactly the payload of an eight-entry leaf; only the tag differs.
        var random = SeededRandom(seed: 11)
        let children = (0..<16).map { _ in random.hash() }
        let asEntries = stride(from: 0, to: 16, by: 2).map { MerkleEntry(id: children[$0], digest: children[$0 + 1]) }
        #expect(MerkleHashing.internalHash(children) != MerkleHashing.leafHash(asEntries))
    }

    @Test func rootChangesWhenAnySingleDigestChanges() throws {
        var random = SeededRandom(seed: 12)
        let entries = random.entries(400)
        var (backend, root) = try MerkleFixtures.built(entries)
        var seen: Set<Hash256> = [root]
        for entry in entries {
            let changed = MerkleEntry(id: entry.id, digest: random.hash())
            let change = backend.upsertChange(changed)
            let newRoot = try MerkleTrie.apply([change], to: &backend)
            #expect(seen.insert(newRoot).inserted, "every altered set has its own root")
            let revert = backend.upsertChange(entry)
            let restored = try MerkleTrie.apply([revert], to: &backend)
            #expect(restored == root)
        }
    }
}
