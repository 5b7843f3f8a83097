/// Entries kept sorted by id in a list of bounded chunks, so that a point update moves at most a
/// chunk's worth of elements and a range query costs O(log n + k) — enough for a million entries
/// without the O(n) insert of one flat sorted array.
struct SortedEntryStore: Sendable {
    struct Item: Sendable {
        var id: PackedWords256
        var digest: PackedWords256
    }

    enum UpsertOutcome {
        case inserted
        case replaced
        case unchanged
    }

    /// A chunk splits in half when it passes this size; bulk loads fill chunks half-way.
    private static let maxChunkSize = 1024

    /// Non-empty, each sorted, and in order: every id in chunk i precedes every id in chunk i + 1.
    private var chunks: [[Item]] = []
    /// `chunks[i][0].id`, kept beside the chunks so the outer binary search stays in one array.
    private var firstIds: [PackedWords256] = []
    private(set) var count = 0

    init() {}

    /// Loads items in any order; of several with the same id, the last wins.
    init(items: [Item]) {
        var sorted: [Item] = []
        sorted.reserveCapacity(items.count)
        // Ties break on input position, so the last of a run of equal ids is the latest given.
        for item in items.enumerated().sorted(by: { ($0.element.id, $0.offset) < ($1.element.id, $1.offset) })
            .map(\.element)
        {
            if let last = sorted.last, last.id == item.id {
                sorted[sorted.count - 1] = item
            } else {
                sorted.append(item)
            }
        }
        let chunkSize = Self.maxChunkSize / 2
        var start = 0
        while start < sorted.count {
            let end = min(start + chunkSize, sorted.count)
            chunks.append(Array(sorted[start..<end]))
            firstIds.append(sorted[start].id)
            start = end
        }
        count = sorted.count
    }

    func digest(of id: PackedWords256) -> PackedWords256? {
        guard !chunks.isEmpty else { return nil }
        let c = chunkIndex(for: id)
        let (index, found) = Self.position(of: id, in: chunks[c])
        return found ? chunks[c][index].digest : nil
    }

    mutating func upsert(_ item: Item) -> UpsertOutcome {
        if chunks.isEmpty {
            chunks = [[item]]
            firstIds = [item.id]
            count = 1
            return .inserted
        }
        let c = chunkIndex(for: item.id)
        let (index, found) = Self.position(of: item.id, in: chunks[c])
        if found {
            if chunks[c][index].digest == item.digest { return .unchanged }
            chunks[c][index].digest = item.digest
            return .replaced
        }
        chunks[c].insert(item, at: index)
        if index == 0 { firstIds[c] = item.id }
        count += 1
        if chunks[c].count > Self.maxChunkSize {
            let upperHalf = Array(chunks[c][(chunks[c].count / 2)...])
            chunks[c].removeLast(upperHalf.count)
            chunks.insert(upperHalf, at: c + 1)
            firstIds.insert(upperHalf[0].id, at: c + 1)
        }
        return .inserted
    }

    mutating func remove(_ id: PackedWords256) -> Bool {
        guard !chunks.isEmpty else { return false }
        let c = chunkIndex(for: id)
        let (index, found) = Self.position(of: id, in: chunks[c])
        guard found else { return false }
        chunks[c].remove(at: index)
        count -= 1
        if chunks[c].isEmpty {
            chunks.remove(at: c)
            firstIds.remove(at: c)
        } else if index == 0 {
            firstIds[c] = chunks[c][0].id
        }
        return true
    }

    /// Items with lower ≤ id ≤ upper, ascending.
    func items(from lower: PackedWords256, through upper: PackedWords256) -> [Item] {
        guard !chunks.isEmpty else { return [] }
        var result: [Item] = []
        var c = chunkIndex(for: lower)
        var index = Self.position(of: lower, in: chunks[c]).index
        while c < chunks.count {
            let chunk = chunks[c]
            while index < chunk.count {
                if upper < chunk[index].id { return result }
                result.append(chunk[index])
                index += 1
            }
            c += 1
            index = 0
        }
        return result
    }

    var allItems: [Item] { Array(chunks.joined()) }

    /// The chunk that holds `id` or would: the last whose first id is ≤ `id`, else the first.
    private func chunkIndex(for id: PackedWords256) -> Int {
        var low = 0
        var high = firstIds.count
        while low < high {
            let mid = (low + high) / 2
            if id < firstIds[mid] { high = mid } else { low = mid + 1 }
        }
        return max(low - 1, 0)
    }

    /// The first index whose id is ≥ `id`, and whether it equals `id`.
    private static func position(of id: PackedWords256, in chunk: [Item]) -> (index: Int, found: Bool) {
        var low = 0
        var high = chunk.count
        while low < high {
            let mid = (low + high) / 2
            if chunk[mid].id < id { low = mid + 1 } else { high = mid }
        }
        return (low, low < chunk.count && chunk[low].id == id)
    }
}
