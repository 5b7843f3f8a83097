import Testing

import KVGossipCore
import KVGossipTestSupport

@Suite struct MerkleTrieTests {
    /// Applies `operations` to an empty backend, calling `MerkleTrie.apply` after every
    /// `batchSize` of them, and checks against a fresh build at a few checkpoints on the way.
    private func replay(
        _ operations: [(InMemoryMerkleBackend) -> (InMemoryMerkleBackend, MerkleChange)],
        batchSize: Int
    ) throws -> (backend: InMemoryMerkleBackend, root: Hash256) {
        var backend = InMemoryMerkleBackend()
        var root = Hash256.zero
        var pending: [MerkleChange] = []
        var batches = 0
        for (index, operation) in operations.enumerated() {
            let (next, change) = operation(backend)
            backend = next
            pending.append(change)
            if pending.count >= batchSize || index == operations.count - 1 {
                root = try MerkleTrie.apply(pending, to: &backend)
                pending.removeAll()
                batches += 1
                if batches % 97 == 0 {
                    let reference = try MerkleFixtures.built(backend.allEntries)
                    #expect(root == reference.root)
                    let nodes = reference.backend.internalNodes
                    #expect(MerkleFixtures.differingNodes(backend.internalNodes, nodes).isEmpty)
                }
            }
        }
        return (backend, root)
    }

    @Test(arguments: [(seed: UInt64(1), batchSize: 1), (2, 7), (3, 1000)])
    func sameSetGivesSameTrieWhateverTheHistory(seed: UInt64, batchSize: Int) throws {
        var random = SeededRandom(seed: 100)
        let entries = random.entries(5_000)
        let reference = try MerkleFixtures.built(entries)

        // Real entries in a seed-specific order, some first with a stale digest corrected at the end,
        // interleaved with extras that are inserted and later removed.
        var order = SeededRandom(seed: seed)
        var operations: [(InMemoryMerkleBackend) -> (InMemoryMerkleBackend, MerkleChange)] = []
        var liveExtras: [Hash256] = []
        var corrections: [MerkleEntry] = []
        func upsert(_ entry: MerkleEntry) -> (InMemoryMerkleBackend) -> (InMemoryMerkleBackend, MerkleChange) {
            { backend in
                var backend = backend
                let change = backend.upsertChange(entry)
                return (backend, change)
            }
        }
        func remove(_ id: Hash256) -> (InMemoryMerkleBackend) -> (InMemoryMerkleBackend, MerkleChange) {
            { backend in
                var backend = backend
                let change = backend.removeChange(id)
                return (backend, change)
            }
        }
        for entry in entries.shuffled(using: &order) {
            if order.next() % 10 == 0 {
                operations.append(upsert(MerkleEntry(id: entry.id, digest: order.hash())))
                corrections.append(entry)
            } else {
                operations.append(upsert(entry))
            }
            if order.next() % 8 == 0 {
                let extra = order.entry()
                liveExtras.append(extra.id)
                operations.append(upsert(extra))
            }
            if order.next() % 11 == 0, !liveExtras.isEmpty {
                operations.append(remove(liveExtras.removeFirst()))
            }
        }
        operations += corrections.map(upsert) + liveExtras.map(remove)

        let (backend, root) = try replay(operations, batchSize: batchSize)
        #expect(backend.entryCount == entries.count)
        #expect(root == reference.root)
        #expect(MerkleFixtures.differingNodes(backend.internalNodes, reference.backend.internalNodes).isEmpty)
    }

    @Test func buildIgnoresInputOrderAndRejectsDuplicates() throws {
        var random = SeededRandom(seed: 4)
        let entries = random.entries(300)
        var sorted = InMemoryMerkleBackend(entries: entries)
        var shuffled = sorted
        let rootSorted = try MerkleTrie.build(from: entries.sorted { $0.id < $1.id }, into: &sorted)
        let rootShuffled = try MerkleTrie.build(from: entries.shuffled(using: &random), into: &shuffled)
        #expect(rootSorted == rootShuffled)
        #expect(MerkleFixtures.differingNodes(sorted.internalNodes, shuffled.internalNodes).isEmpty)
        #expect(try MerkleTrie.build(from: entries, into: &sorted) == rootSorted, "rebuilding is idempotent")

        #expect(throws: MerkleTrieError.duplicateId(entries[5].id)) {
            try MerkleTrie.build(from: entries + [entries[5]], into: &sorted)
        }
        #expect(throws: MerkleTrieError.invalidLeafLimit(0)) {
            try MerkleTrie.apply([], to: &sorted, leafLimit: 0)
        }
    }

    /// Checks the incrementally maintained trie against a fresh build of the same entries.
    private func expectMatchesBuild(
        _ backend: InMemoryMerkleBackend, root: Hash256, leafLimit: Int = MerkleTrie.defaultLeafLimit,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let reference = try MerkleFixtures.built(backend.allEntries, leafLimit: leafLimit)
        #expect(root == reference.root, sourceLocation: sourceLocation)
        #expect(
            MerkleFixtures.differingNodes(backend.internalNodes, reference.backend.internalNodes).isEmpty,
            sourceLocation: sourceLocation)
    }

    @Test func bucketSplitsPastTheLimitAndCollapsesBack() throws {
        var random = SeededRandom(seed: 5)
        var (backend, root) = try MerkleFixtures.built(random.entries(40))
        let originalNodes = backend.internalNodes
        let prefix = NibblePath(hex: "3c")!
        #expect(backend.internalNodes[prefix] == nil)

        var added: [Hash256] = []
        for _ in 0..<40 {
            let entry = MerkleEntry(id: random.id(sharing: prefix.nibbles), digest: random.hash())
            added.append(entry.id)
            let change = backend.upsertChange(entry)
            root = try MerkleTrie.apply([change], to: &backend)
            try expectMatchesBuild(backend, root: root)
        }
        #expect(backend.internalNodes[prefix]?.count == 40)

        for id in added.shuffled(using: &random) {
            let change = backend.removeChange(id)
            root = try MerkleTrie.apply([change], to: &backend)
            try expectMatchesBuild(backend, root: root)
        }
        #expect(MerkleFixtures.differingNodes(backend.internalNodes, originalNodes).isEmpty)
    }

    @Test func idsSharingLongPrefixesBuildDeepChains() throws {
        var random = SeededRandom(seed: 6)
        let shared: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
        let clustered = (0..<100).map { _ in MerkleEntry(id: random.id(sharing: shared), digest: random.hash()) }
        var (backend, root) = try MerkleFixtures.built(random.entries(100))

        for batch in stride(from: 0, to: clustered.count, by: 5) {
            let changes = clustered[batch..<batch + 5].map { backend.upsertChange($0) }
            root = try MerkleTrie.apply(changes, to: &backend)
            try expectMatchesBuild(backend, root: root)
        }
        #expect(MerkleFixtures.internalLevels(backend) >= shared.count + 1)
        #expect(backend.internalNodes[NibblePath(nibbles: shared)!]?.count == 100)

        root = try MerkleTrie.apply(clustered.map { backend.removeChange($0.id) }, to: &backend)
        try expectMatchesBuild(backend, root: root)
        #expect(MerkleFixtures.internalLevels(backend) < shared.count)
    }

    @Test func pathsSixtyNibblesDeep() throws {
        var random = SeededRandom(seed: 8)
        let shared = (0..<60).map { _ in UInt8(random.next() % 16) }
        var ids: Set<Hash256> = []
        while ids.count < 300 { ids.insert(random.id(sharing: shared)) }
        var backend = InMemoryMerkleBackend()
        var root = Hash256.zero
        for (index, id) in ids.sorted().enumerated() {
            let change = backend.upsertChange(MerkleEntry(id: id, digest: random.hash()))
            root = try MerkleTrie.apply([change], to: &backend)
            if index % 50 == 49 { try expectMatchesBuild(backend, root: root) }
        }
        #expect(backend.internalNodes[NibblePath(nibbles: shared)!]?.count == 300)
        #expect(MerkleFixtures.internalLevels(backend) >= 62)

        for id in ids.shuffled(using: &random).prefix(290) {
            let change = backend.removeChange(id)
            root = try MerkleTrie.apply([change], to: &backend)
        }
        try expectMatchesBuild(backend, root: root)
        #expect(backend.internalNodes.isEmpty)
    }

    @Test func leavesAtFullDepthWithLimitOne() throws {
        // Sixteen ids equal but for the last nibble: with B = 1 the chain reaches depth 63 and the
        // leaves sit at depth 64, where a node is a leaf whatever it holds.
        var random = SeededRandom(seed: 9)
        let stem = random.hash().bytes
        let ids = (0..<16).map { last in Hash256(bytes: stem.dropLast() + [(stem[31] & 0xF0) | UInt8(last)])! }
        var backend = InMemoryMerkleBackend()
        var root = Hash256.zero
        for id in ids.shuffled(using: &random) {
            let change = backend.upsertChange(MerkleEntry(id: id, digest: random.hash()))
            root = try MerkleTrie.apply([change], to: &backend, leafLimit: 1)
            try expectMatchesBuild(backend, root: root, leafLimit: 1)
        }
        #expect(MerkleFixtures.internalLevels(backend) == 64)
        let deepest = NibblePath(prefixOf: ids[0], depth: 63)
        #expect(backend.internalNodes[deepest]?.count == 16)
        let leaf = try MerkleReader.view(at: NibblePath(prefixOf: ids[3], depth: 64), in: &backend)
        #expect(leaf == .leaf([MerkleEntry(id: ids[3], digest: backend.digest(of: ids[3])!)]))

        for id in ids.shuffled(using: &random) {
            let change = backend.removeChange(id)
            root = try MerkleTrie.apply([change], to: &backend, leafLimit: 1)
            try expectMatchesBuild(backend, root: root, leafLimit: 1)
        }
        #expect(root == .zero)
        #expect(backend.internalNodes.isEmpty)
    }

    @Test func wrongDeltasAreReportedOnCollapse() throws {
        var random = SeededRandom(seed: 10)
        let entries = random.entries(100)
        var (backend, _) = try MerkleFixtures.built(entries)
        var changes: [MerkleChange] = []
        for entry in entries.prefix(90) { changes.append(backend.removeChange(entry.id)) }
        changes.removeLast()  // one removal goes unreported: the stored count now says 11, not 10
        #expect(throws: MerkleTrieError.countMismatch(prefix: .root, expected: 11, found: 10)) {
            try MerkleTrie.apply(changes, to: &backend)
        }
    }

    @Test func unsortedEntriesFromABackendAreRejected() throws {
        struct ReversingBackend: MerkleBackend {
            var inner: InMemoryMerkleBackend
            func internalNode(at prefix: NibblePath) -> MerkleInternalNode? { inner.internalNode(at: prefix) }
            mutating func setInternalNode(_ node: MerkleInternalNode, at prefix: NibblePath) {
                inner.setInternalNode(node, at: prefix)
            }
            mutating func removeInternalNodes(atOrBelow prefix: NibblePath) {
                inner.removeInternalNodes(atOrBelow: prefix)
            }
            func entries(under prefix: NibblePath) -> [MerkleEntry] { inner.entries(under: prefix).reversed() }
        }
        var random = SeededRandom(seed: 13)
        var inner = InMemoryMerkleBackend()
        let changes = random.entries(3).map { inner.upsertChange($0) }
        var backend = ReversingBackend(inner: inner)
        #expect(throws: MerkleTrieError.entriesNotSorted(prefix: .root)) {
            try MerkleTrie.apply(changes, to: &backend)
        }
    }

    @Test(arguments: [1_000, 100_000])
    func singleChangeTouchesOnePath(n: Int) throws {
        var random = SeededRandom(seed: UInt64(n))
        let entries = random.entries(n)
        let built = try MerkleFixtures.built(entries)
        var backend = CountingMerkleBackend(inner: built.backend)
        var live = entries.map(\.id)
        var worst = 0
        for round in 0..<300 {
            let depthBefore = MerkleFixtures.internalLevels(backend.inner)
            let change: MerkleChange
            switch round % 3 {
            case 0:
                let id = live[Int(random.next() % UInt64(live.count))]
                change = backend.inner.upsertChange(MerkleEntry(id: id, digest: random.hash()))
            case 1:
                let entry = random.entry()
                live.append(entry.id)
                change = backend.inner.upsertChange(entry)
            default:
                let id = live.remove(at: Int(random.next() % UInt64(live.count)))
                change = backend.inner.removeChange(id)
            }
            backend.calls = 0
            _ = try MerkleTrie.apply([change], to: &backend)
            let depth = max(depthBefore, MerkleFixtures.internalLevels(backend.inner))
            // Per internal level a read and a write; at the leaf a read and an entry fetch;
            // a split or collapse adds a write or a removal.
            #expect(backend.calls <= 3 * (depth + 2))
            worst = max(worst, backend.calls)
        }
        #expect(worst >= 2 * MerkleFixtures.internalLevels(backend.inner) - 2, "the path really is walked")
    }

    @Test func batchTouchesEachNodeOnTheUnionOfPathsOnce() throws {
        var random = SeededRandom(seed: 14)
        let entries = random.entries(20_000)
        var backend = CountingMerkleBackend(inner: try MerkleFixtures.built(entries).backend)
        let changed = entries.shuffled(using: &random).prefix(200)
        let changes = changed.map { backend.inner.upsertChange(MerkleEntry(id: $0.id, digest: random.hash())) }
        _ = try MerkleTrie.apply(changes, to: &backend)

        var union: Set<NibblePath> = []
        for entry in changed {
            let depth = MerkleFixtures.leafDepth(of: entry.id, in: backend.inner)
            for level in 0...depth { union.insert(NibblePath(prefixOf: entry.id, depth: level)) }
        }
        // Digest-only changes: each internal node on the union is read and written, each leaf
        // position read and its entries fetched — two calls per node, no more.
        #expect(backend.calls == 2 * union.count)
        try expectMatchesBuild(backend.inner, root: MerkleReader.hash(at: .root, in: &backend))
    }
}
