import Testing

import KVGossipCore
import KVGossipTestSupport

@Suite struct MerkleDiffTests {
    // MARK: The pure step

    private func entry(_ idByte: UInt8, _ digestByte: UInt8) -> MerkleEntry {
        MerkleEntry(
            id: Hash256(bytes: [UInt8](repeating: idByte, count: 32))!,
            digest: Hash256(bytes: [UInt8](repeating: digestByte, count: 32))!)
    }

    @Test func stepDescendsIntoDifferingChildrenOnly() {
        var random = SeededRandom(seed: 20)
        let prefix = NibblePath(hex: "4e")!
        let children = (0..<16).map { _ in random.hash() }
        var other = children
        other[3] = random.hash()
        other[9] = .zero

        let same = MerkleDiff.step(prefix: prefix, local: .internal(children), remote: .internal(children))
        #expect(same == .descend([]))
        #expect(same.hashComparisons == 16)
        let differing = MerkleDiff.step(prefix: prefix, local: .internal(children), remote: .internal(other))
        #expect(differing == .descend([prefix.child(3), prefix.child(9)]))
    }

    @Test func stepAsksForEntriesWhenShapesDiffer() {
        let children = [Hash256](repeating: .zero, count: 16)
        let leaf = MerkleNodeView.leaf([entry(1, 1)])
        #expect(MerkleDiff.step(prefix: .root, local: .internal(children), remote: leaf) == .needEntries)
        #expect(MerkleDiff.step(prefix: .root, local: .empty, remote: .internal(children)) == .needEntries)
        #expect(MerkleDiffStep.needEntries.hashComparisons == 0)
    }

    @Test func stepComparesEntriesOfLeaves() {
        let local = MerkleNodeView.leaf([entry(1, 1), entry(2, 2), entry(4, 4), entry(6, 6)])
        let remote = MerkleNodeView.leaf([entry(2, 2), entry(3, 3), entry(4, 5), entry(7, 7)])
        let expected = [1, 3, 4, 6, 7].map { entry($0, 0).id }
        #expect(MerkleDiff.step(prefix: .root, local: local, remote: remote) == .differingIds(expected))
        #expect(MerkleDiff.step(prefix: .root, local: remote, remote: local) == .differingIds(expected))
        let allRemote = [2, 3, 4, 7].map { entry($0, 0).id }
        #expect(MerkleDiff.step(prefix: .root, local: .empty, remote: remote) == .differingIds(allRemote))
        #expect(MerkleDiff.step(prefix: .root, local: local, remote: local) == .differingIds([]))
        #expect(MerkleDiff.step(prefix: .root, local: .empty, remote: .empty) == .differingIds([]))
    }

    @Test func wellFormedViews() {
        let prefix = NibblePath(hex: "0")!
        let noChildren = [Hash256](repeating: .zero, count: 16)
        #expect(MerkleNodeView.internal(noChildren).isWellFormed(at: prefix, maxEntries: 16))
        #expect(!MerkleNodeView.internal([.zero]).isWellFormed(at: prefix, maxEntries: 16))
        #expect(MerkleNodeView.leaf([entry(1, 1), entry(2, 2)]).isWellFormed(at: prefix, maxEntries: 16))
        #expect(!MerkleNodeView.leaf([entry(2, 2), entry(1, 1)]).isWellFormed(at: prefix, maxEntries: 16))
        #expect(!MerkleNodeView.leaf([entry(1, 1), entry(1, 2)]).isWellFormed(at: prefix, maxEntries: 16))
        #expect(!MerkleNodeView.leaf([entry(1, 1), entry(0x10, 2)]).isWellFormed(at: prefix, maxEntries: 16))
        #expect(!MerkleNodeView.leaf([entry(1, 1), entry(2, 2)]).isWellFormed(at: prefix, maxEntries: 1))
        #expect(!MerkleNodeView.leaf([]).isWellFormed(at: prefix, maxEntries: 16))
        #expect(MerkleNodeView(entries: []) == .empty)
    }

    // MARK: Whole diffs

    /// The smallest k ≥ 0 with B·16^k ≥ n, i.e. ⌈log₁₆(n/B)⌉ clamped at 0.
    private func levelsAbove(_ n: Int, leafLimit: Int) -> Int {
        var k = 0
        var capacity = leafLimit
        while capacity < n {
            capacity *= 16
            k += 1
        }
        return k
    }

    /// Ground truth: ids whose digests differ or that one side lacks, ascending.
    private func expectedDifferences(_ a: InMemoryMerkleBackend, _ b: InMemoryMerkleBackend) -> [Hash256] {
        var digestsA: [Hash256: Hash256] = [:]
        for entry in a.allEntries { digestsA[entry.id] = entry.digest }
        var digestsB: [Hash256: Hash256] = [:]
        for entry in b.allEntries { digestsB[entry.id] = entry.digest }
        return Set(digestsA.keys).union(digestsB.keys).filter { digestsA[$0] != digestsB[$0] }.sorted()
    }

    /// With d differing ids and internal nodes at depths below L, a node compared as internal on both
    /// sides has a differing id beneath it, and each id has at most L such ancestors; each such node
    /// costs 16 comparisons, plus 1 for the roots: comparisons ≤ 1 + 16·d·L. For random ids L is
    /// ⌈log₁₆(n/B)⌉ or a level more (a bucket over B by chance), which the +2 of the design's
    /// bound 16·d·(⌈log₁₆(n/B)⌉ + 2) + 1 absorbs; both are checked.
    @Test(arguments: [0, 1, 100, 10_000], [0, 1, 10, 100])
    func findsExactlyTheDifferingIds(n: Int, d: Int) throws {
        var random = SeededRandom(seed: UInt64(n * 1_000 + d))
        let entries = random.entries(n)
        var (a, _) = try MerkleFixtures.built(entries)
        var b = a
        var changesA: [MerkleChange] = []
        var changesB: [MerkleChange] = []
        var untouched = entries.map(\.id).shuffled(using: &random)
        for _ in 0..<d {
            let onA = random.next() % 2 == 0
            let kind = untouched.isEmpty ? 0 : random.next() % 3
            let change: MerkleChange
            switch kind {
            case 0:  // added on one side
                let entry = random.entry()
                change = onA ? a.upsertChange(entry) : b.upsertChange(entry)
            case 1:  // digest updated on one side
                let updated = MerkleEntry(id: untouched.removeLast(), digest: random.hash())
                change = onA ? a.upsertChange(updated) : b.upsertChange(updated)
            default:  // removed on one side
                let id = untouched.removeLast()
                change = onA ? a.removeChange(id) : b.removeChange(id)
            }
            if onA { changesA.append(change) } else { changesB.append(change) }
        }
        _ = try MerkleTrie.apply(changesA, to: &a)
        _ = try MerkleTrie.apply(changesB, to: &b)

        let expected = expectedDifferences(a, b)
        #expect(expected.count == d)
        let (ids, comparisons) = try MerkleDiff.differences(&a, &b)
        #expect(ids == expected)
        let reversed = try MerkleDiff.differences(&b, &a)
        #expect(reversed.ids == expected)
        #expect(reversed.comparisons == comparisons)

        if d == 0 {
            #expect(comparisons == 1)
        }
        let levels = max(MerkleFixtures.internalLevels(a), MerkleFixtures.internalLevels(b))
        #expect(comparisons <= 1 + 16 * d * levels)
        let largest = max(a.entryCount, b.entryCount)
        let bound = 16 * (d * (levelsAbove(largest, leafLimit: MerkleTrie.defaultLeafLimit) + 2)) + 1
        #expect(comparisons <= bound)
    }

    @Test func leafOnOneSideInternalOnTheOther() throws {
        var random = SeededRandom(seed: 21)
        let bucket = NibblePath(hex: "5")!
        var entries = (0..<200).map { _ in random.entry() }.filter { !bucket.contains($0.id) }
        let clustered = (0..<16).map { _ in MerkleEntry(id: random.id(sharing: bucket.nibbles), digest: random.hash()) }
        entries += clustered
        var (a, _) = try MerkleFixtures.built(entries)
        var b = a
        let added = MerkleEntry(id: random.id(sharing: bucket.nibbles), digest: random.hash())
        let updated = MerkleEntry(id: clustered[7].id, digest: random.hash())
        let changes = [b.upsertChange(added), b.upsertChange(updated)]
        _ = try MerkleTrie.apply(changes, to: &b)

        #expect(a.internalNodes[bucket] == nil)
        #expect(b.internalNodes[bucket]?.count == 17)
        let (ids, comparisons) = try MerkleDiff.differences(&a, &b)
        #expect(ids == [added.id, updated.id].sorted())
        #expect(comparisons == 1 + 16)

        // Below a's leaf, a's view is the filtered entries; b's matching position agrees where equal.
        for nibble in UInt8(0)..<16 {
            let child = bucket.child(nibble)
            let viewA = try MerkleReader.view(at: child, in: &a)
            #expect(viewA == MerkleNodeView(entries: a.allEntries.filter { child.contains($0.id) }))
            let sameHere = !child.contains(added.id) && !child.contains(updated.id)
            #expect((try MerkleReader.hash(at: child, in: &b) == viewA.hash) == sameHere)
        }
    }

    @Test func deepPathsDiff() throws {
        var random = SeededRandom(seed: 22)
        let shared = (0..<60).map { _ in UInt8(random.next() % 16) }
        var ids: Set<Hash256> = []
        while ids.count < 400 { ids.insert(random.id(sharing: shared)) }
        let entries = ids.map { MerkleEntry(id: $0, digest: random.hash()) }
        var (a, _) = try MerkleFixtures.built(entries, leafLimit: 2)
        var b = a
        let victims = entries.shuffled(using: &random).prefix(5)
        let changes = victims.map { b.upsertChange(MerkleEntry(id: $0.id, digest: random.hash())) }
        _ = try MerkleTrie.apply(changes, to: &b, leafLimit: 2)
        let (found, comparisons) = try MerkleDiff.differences(&a, &b)
        #expect(found == victims.map(\.id).sorted())
        #expect(comparisons <= 1 + 16 * 5 * max(MerkleFixtures.internalLevels(a), MerkleFixtures.internalLevels(b)))
    }

    /// A reconciliation that only exchanges views, as the network protocol will: a queue of
    /// prefixes, one view request per side per prefix, entries requested when `step` says so.
    @Test func viewsAndStepAloneReconcile() throws {
        var random = SeededRandom(seed: 23)
        let entries = random.entries(3_000)
        var (local, _) = try MerkleFixtures.built(entries)
        var remote = local
        var changes: [MerkleChange] = []
        for entry in entries.shuffled(using: &random).prefix(30) {
            changes.append(remote.removeChange(entry.id))
        }
        for _ in 0..<30 { changes.append(remote.upsertChange(random.entry())) }
        _ = try MerkleTrie.apply(changes, to: &remote)

        var found: [Hash256] = []
        var queue: [NibblePath] = [.root]
        var messages = 0
        while let prefix = queue.popLast() {
            var localView = try MerkleReader.view(at: prefix, in: &local)
            var remoteView = try MerkleReader.view(at: prefix, in: &remote)
            messages += 1
            var next = MerkleDiff.step(prefix: prefix, local: localView, remote: remoteView)
            if next == .needEntries {
                if case .internal = localView { localView = try MerkleReader.entriesView(under: prefix, in: &local) }
                if case .internal = remoteView {
                    remoteView = try MerkleReader.entriesView(under: prefix, in: &remote)
                    messages += 1
                }
                #expect(remoteView.isWellFormed(at: prefix, maxEntries: 16 + 60))
                next = MerkleDiff.step(prefix: prefix, local: localView, remote: remoteView)
            }
            switch next {
            case .descend(let children): queue.append(contentsOf: children)
            case .differingIds(let ids): found += ids
            case .needEntries: Issue.record("entry views never need entries")
            }
        }
        #expect(found.sorted() == expectedDifferences(local, remote))
        #expect(found.count == 60)
        #expect(messages <= 1 + 60 * 4 * 2)
    }
}
