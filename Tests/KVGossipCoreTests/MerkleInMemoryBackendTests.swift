import Testing

import KVGossipCore
import KVGossipTestSupport

@Suite struct MerkleInMemoryBackendTests {
    @Test func upsertAndRemoveReportCountDeltas() {
        var random = SeededRandom(seed: 30)
        var backend = InMemoryMerkleBackend()
        let entry = random.entry()
        #expect(backend.upsert(entry) == 1)
        #expect(backend.upsert(entry) == 0)
        let updated = MerkleEntry(id: entry.id, digest: random.hash())
        #expect(backend.upsert(updated) == 0)
        #expect(backend.digest(of: entry.id) == updated.digest)
        #expect(backend.entryCount == 1)
        #expect(backend.remove(entry.id) == -1)
        #expect(backend.remove(entry.id) == 0)
        #expect(backend.digest(of: entry.id) == nil)
        #expect(backend.entryCount == 0)
    }

    @Test func bulkLoadKeepsTheLastOfRepeatedIds() {
        var random = SeededRandom(seed: 31)
        let entries = random.entries(3_000)
        let replacement = MerkleEntry(id: entries[10].id, digest: random.hash())
        let backend = InMemoryMerkleBackend(entries: entries + [replacement])
        #expect(backend.entryCount == 3_000)
        #expect(backend.digest(of: entries[10].id) == replacement.digest)
        #expect(backend.allEntries.map(\.id) == entries.map(\.id).sorted())
    }

    /// Enough inserts and removals to split and empty the store's chunks, checked against a dictionary.
    @Test func rangeQueriesMatchAReferenceAfterManyUpdates() {
        var random = SeededRandom(seed: 32)
        var backend = InMemoryMerkleBackend()
        var reference: [Hash256: Hash256] = [:]
        var ids: [Hash256] = []
        for step in 0..<12_000 {
            if step % 4 == 3, !ids.isEmpty {
                let id = ids.remove(at: Int(random.next() % UInt64(ids.count)))
                #expect(backend.remove(id) == -1)
                reference[id] = nil
            } else if step % 4 == 2, !ids.isEmpty {
                let entry = MerkleEntry(id: ids[Int(random.next() % UInt64(ids.count))], digest: random.hash())
                backend.upsert(entry)
                reference[entry.id] = entry.digest
            } else {
                let entry = random.entry()
                backend.upsert(entry)
                reference[entry.id] = entry.digest
                ids.append(entry.id)
            }
        }
        let sorted = reference.keys.sorted().map { MerkleEntry(id: $0, digest: reference[$0]!) }
        #expect(backend.entryCount == reference.count)
        #expect(backend.allEntries == sorted)
        for depth in [0, 1, 2, 3, 4, 64] {
            for _ in 0..<20 {
                let prefix = NibblePath(prefixOf: ids[Int(random.next() % UInt64(ids.count))], depth: depth)
                #expect(backend.entries(under: prefix) == sorted.filter { prefix.contains($0.id) })
            }
        }
        let absent = NibblePath(prefixOf: random.hash(), depth: 64)
        #expect(backend.entries(under: absent).isEmpty)
        // Ends of the id space, where chunk lookups clamp.
        #expect(backend.entries(under: NibblePath(hex: "0")!) == sorted.filter { $0.id.bytes[0] < 0x10 })
        #expect(backend.entries(under: NibblePath(hex: "f")!) == sorted.filter { $0.id.bytes[0] >= 0xF0 })
    }

    @Test func removingInternalNodesTakesTheSubtreeOnly() throws {
        var random = SeededRandom(seed: 33)
        var (backend, _) = try MerkleFixtures.built(random.entries(5_000))
        let subtree = NibblePath(hex: "a")!
        let before = backend.internalNodes
        #expect(before.keys.contains { $0.depth > 1 && subtree.isPrefix(of: $0) })
        backend.removeInternalNodes(atOrBelow: subtree)
        let outside = before.filter { !subtree.isPrefix(of: $0.key) }
        #expect(MerkleFixtures.differingNodes(backend.internalNodes, outside).isEmpty)
        backend.removeInternalNodes(atOrBelow: .root)
        #expect(backend.internalNodes.isEmpty)
    }
}
