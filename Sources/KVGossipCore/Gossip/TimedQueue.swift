/// Items ordered by a time, ties by the order they were scheduled, so that a run with one seed
/// replays exactly: a binary heap, O(log n) to schedule and to take the earliest. The gossip's
/// repair schedule and the simulator's event queue are both one.
public struct TimedQueue<Item>: Sendable where Item: Sendable {
    private var heap: [(at: UInt64, seq: UInt64, item: Item)] = []
    private var nextSeq: UInt64 = 0

    public init() {}

    public var isEmpty: Bool { heap.isEmpty }
    public var count: Int { heap.count }
    /// The earliest item's time.
    public var nextTime: UInt64? { heap.first?.at }

    public mutating func schedule(_ item: Item, at time: UInt64) {
        heap.append((time, nextSeq, item))
        nextSeq += 1
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard earlier(i, parent) else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    /// Removes and returns the earliest item.
    public mutating func pop() -> (at: UInt64, item: Item)? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var i = 0
        while true {
            let left = 2 * i + 1, right = left + 1
            var smallest = i
            if left < heap.count, earlier(left, smallest) { smallest = left }
            if right < heap.count, earlier(right, smallest) { smallest = right }
            guard smallest != i else { break }
            heap.swapAt(i, smallest)
            i = smallest
        }
        return (top.at, top.item)
    }

    /// Removes and returns the earliest item if its time is at or before `time`.
    public mutating func popDue(at time: UInt64) -> (at: UInt64, item: Item)? {
        guard let next = nextTime, next <= time else { return nil }
        return pop()
    }

    /// Drops the items `gone` selects, keeping the others' order.
    public mutating func removeAll(where gone: (Item) -> Bool) {
        let kept = heap.filter { !gone($0.item) }.sorted { ($0.at, $0.seq) < ($1.at, $1.seq) }
        heap = kept  // a sorted array is a valid heap
    }

    private func earlier(_ a: Int, _ b: Int) -> Bool {
        heap[a].at != heap[b].at ? heap[a].at < heap[b].at : heap[a].seq < heap[b].seq
    }
}
