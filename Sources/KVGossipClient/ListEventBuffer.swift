import Synchronization

/// The unread events of one list subscription, bounded by the size of the set it describes.
///
/// A list's events cannot keep only the newest like a key's value can: every key's change
/// matters. Queueing them all would grow without bound behind a stalled reader, so unread events
/// for the same key are merged in place (``ListEvent/merge(_:_:)``), unread refusals of the same
/// key collapse to the latest, and unread markers of the same kind collapse to the latest. A reader that catches up sees the net change of every key, in the
/// order each key first changed, and ends up with exactly the client's current set.
final class ListEventBuffer: Sendable {
    private enum Slot {
        case key(ListEvent.MergeSlot, seq: UInt64)
        case marker(ListEvent, seq: UInt64)
    }

    private struct State {
        /// Positions in arrival order; a slot whose seq no longer matches `pending` was merged away.
        var order: [Slot] = []
        var head = 0
        var pending: [ListEvent.MergeSlot: (seq: UInt64, event: ListEvent)] = [:]
        var markers: [ListEvent: UInt64] = [:]
        var nextSeq: UInt64 = 0
        var stale = 0
        var waiter: CheckedContinuation<ListEvent?, Never>?
        var finished = false

        mutating func seq() -> UInt64 {
            nextSeq += 1
            return nextSeq
        }

        mutating func push(_ event: ListEvent) {
            if let key = event.mergeSlot {
                if let old = pending[key] {
                    if let merged = ListEvent.merge(old.event, event) {
                        pending[key] = (old.seq, merged)
                    } else {
                        pending.removeValue(forKey: key)
                        stale += 1
                    }
                } else {
                    let s = seq()
                    pending[key] = (s, event)
                    order.append(.key(key, seq: s))
                }
            } else {
                if markers[event] != nil { stale += 1 }
                let s = seq()
                markers[event] = s
                order.append(.marker(event, seq: s))
            }
            compactIfWasteful()
        }

        mutating func pop() -> ListEvent? {
            while head < order.count {
                let slot = order[head]
                head += 1
                switch slot {
                case .key(let key, let s):
                    if let p = pending[key], p.seq == s {
                        pending.removeValue(forKey: key)
                        return p.event
                    }
                    stale -= 1
                case .marker(let m, let s):
                    if markers[m] == s {
                        markers.removeValue(forKey: m)
                        return m
                    }
                    stale -= 1
                }
            }
            order.removeAll(keepingCapacity: true)
            head = 0
            return nil
        }

        /// Keeps `order` within a small multiple of the live slots however the set churns.
        mutating func compactIfWasteful() {
            let dead = head + stale
            guard dead > 64, dead > order.count / 2 else { return }
            order = order[head...].filter { slot in
                switch slot {
                case .key(let key, let s): pending[key]?.seq == s
                case .marker(let m, let s): markers[m] == s
                }
            }
            head = 0
            stale = 0
        }
    }

    private let state = Mutex(State())

    func push(_ events: [ListEvent]) {
        let resume = state.withLock { s -> (CheckedContinuation<ListEvent?, Never>, ListEvent)? in
            guard !s.finished else { return nil }
            for e in events { s.push(e) }
            guard let waiter = s.waiter, let next = s.pop() else { return nil }
            s.waiter = nil
            return (waiter, next)
        }
        if let (waiter, event) = resume { waiter.resume(returning: event) }
    }

    /// No more events: a reader gets what is unread, then the end.
    func finish() {
        let waiter = state.withLock { s in
            s.finished = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: nil)
    }

    /// The next event, waiting for one; nil at the end or when the reading task is cancelled.
    /// One reader at a time: a second concurrent reader gets nil.
    func next() async -> ListEvent? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<ListEvent?, Never>) in
                let now = state.withLock { s -> ListEvent?? in
                    if let e = s.pop() { return .some(e) }
                    if s.finished || s.waiter != nil || Task.isCancelled { return .some(nil) }
                    s.waiter = continuation
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            let waiter = state.withLock { s in
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume(returning: nil)
        }
    }

    /// Whether a reader is parked in `next()`, for tests that must push only after it waits.
    var hasWaitingReader: Bool { state.withLock { $0.waiter != nil } }

    /// Unread slots, for tests of the bound.
    var backlog: Int { state.withLock { $0.order.count - $0.head } }
}

/// The events of a ``ListSubscription``: an `AsyncSequence` that ends at
/// ``ListSubscription/unsubscribe()``. Single reader: iterate it from one task.
public struct ListEvents: AsyncSequence, Sendable {
    /// Each element is one change or marker.
    public typealias Element = ListEvent
    /// Reading never fails; the sequence just ends.
    public typealias Failure = Never

    let buffer: ListEventBuffer

    /// Iterates the events.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let buffer: ListEventBuffer
        /// The next event; nil when the subscription ended or the task was cancelled.
        public mutating func next() async -> ListEvent? { await buffer.next() }
    }

    /// The iterator; make one per subscription.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(buffer: buffer) }
}
