import KVGossipCore
import KVGossipNode
import KVGossipStore
import Synchronization

/// Something a watch has to tell its client, in the order it happened.
enum WatchItem: Sendable {
    case change(StoreChange)
    case keyState(Key, KeyState)
    /// The node's default state changed: every selected key without a state of its own moved.
    case defaultState(KeyState)
}

/// The unsent items of one watch, with room for `limit` of them and a share of its connection's
/// room (`ConnectionBacklog`). An item that finds no room makes the watch *fall behind*: its
/// items are dropped at once (memory never grows with a reader that does not read) and the
/// watch owes its client a `fell-behind` event and a fresh initial state.
struct WatchBacklog {
    let limit: Int
    private var items: [WatchItem] = []
    private var head = 0
    private(set) var fellBehind = false

    init(limit: Int) { self.limit = limit }

    var count: Int { items.count - head }

    /// Queues `item` if the watch and its connection have room (`share` takes one unit of the
    /// connection's room). Returns how many units to give back to the connection.
    mutating func push(_ item: WatchItem, share: () -> Bool) -> Int {
        guard !fellBehind else { return 0 }
        guard count < limit, share() else {
            let freed = count
            items.removeAll()
            head = 0
            fellBehind = true
            return freed
        }
        items.append(item)
        return 0
    }

    /// The oldest item, or nil when empty. After falling behind it stays empty until `resume()`.
    mutating func pop() -> WatchItem? {
        guard head < items.count else { return nil }
        let item = items[head]
        head += 1
        if head > 64, head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        return item
    }

    /// The fall was reported: queue again from now on.
    mutating func resume() { fellBehind = false }
}

/// Room for the backlogs of all the watches of one connection.
final class ConnectionBacklog: Sendable {
    private let used = Atomic<Int>(0)
    let limit: Int

    init(limit: Int) { self.limit = limit }

    func take() -> Bool {
        if used.add(1, ordering: .relaxed).newValue <= limit { return true }
        used.subtract(1, ordering: .relaxed)
        return false
    }

    func give(_ n: Int) {
        if n > 0 { used.subtract(n, ordering: .relaxed) }
    }
}

/// A watch's backlog shared between the threads that commit (they push) and the watch's task
/// (it waits for the next item).
final class WatchInbox: Sendable {
    enum Next: Sendable {
        case item(WatchItem)
        case fellBehind
    }

    private struct State {
        var backlog: WatchBacklog
        var waiter: CheckedContinuation<Next?, Never>?
        var closed = false
    }

    private let state: Mutex<State>
    private let connection: ConnectionBacklog

    init(limit: Int, connection: ConnectionBacklog) {
        state = Mutex(State(backlog: WatchBacklog(limit: limit)))
        self.connection = connection
    }

    /// Quick and never blocking: called on committing threads. The items of one commit are
    /// queued together, so whether they fit does not depend on how fast the watch's task runs.
    func push(_ items: [WatchItem]) {
        let (waiter, next) = state.withLock { s -> (CheckedContinuation<Next?, Never>?, Next?) in
            guard !s.closed else { return (nil, nil) }
            for item in items { connection.give(s.backlog.push(item, share: connection.take)) }
            guard let waiter = s.waiter else { return (nil, nil) }
            s.waiter = nil
            return (waiter, Self.take(&s, connection))
        }
        waiter?.resume(returning: next)
    }

    /// Whether the watch fell behind and has not yet said so.
    var hasFallenBehind: Bool { state.withLock { $0.backlog.fellBehind } }

    /// The next thing to send, waiting for one; nil once closed or when the task is cancelled.
    func next() async -> Next? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Next?, Never>) in
                let now = state.withLock { s -> Next?? in
                    if let next = Self.take(&s, connection) { return .some(next) }
                    if s.closed || Task.isCancelled { return .some(nil) }
                    s.waiter = continuation
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            close()
        }
    }

    /// Takes the fall (once) or the oldest item.
    private static func take(_ s: inout State, _ connection: ConnectionBacklog) -> Next? {
        if s.backlog.fellBehind {
            s.backlog.resume()
            return .fellBehind
        }
        guard let item = s.backlog.pop() else { return nil }
        connection.give(1)
        return .item(item)
    }

    /// No more items; a waiting task gets nil. Returns the room it held to the connection.
    func close() {
        let waiter = state.withLock { s -> CheckedContinuation<Next?, Never>? in
            s.closed = true
            var freed = 0
            while s.backlog.pop() != nil { freed += 1 }
            connection.give(freed)
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: nil)
    }
}
