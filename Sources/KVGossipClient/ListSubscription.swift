import KVGossipControl
import Synchronization

/// A live view of the keys matching a pattern, from ``KVClient/subscribeList(pattern:)``.
///
/// ``entries`` is the set as the client knows it; ``events`` says how it got there: the initial
/// set, then live changes, and after every reconnect a reconciliation against the agent's fresh
/// answer (keys deleted, changed or added while the client was away), closed by
/// `.synced(.resync)`.
public final class ListSubscription: Sendable {
    /// The pattern the set is selected by (Docs/contract.md §Patterns), e.g. `/app/**`.
    public let pattern: String
    let id: UInt64
    private let client: KVClient
    private let buffer = ListEventBuffer()

    private struct State {
        var entries: [String: KeyRecord] = [:]
        /// A full answer (all its pages) was applied at least once.
        var haveInitial = false
        /// The keys seen so far in the answer whose pages are arriving; nil between answers.
        var seen: Set<String>?
        var synced = false
        var ended = false
    }

    private let state = Mutex(State())

    init(pattern: String, id: UInt64, client: KVClient) {
        self.pattern = pattern
        self.id = id
        self.client = client
    }

    /// The matching keys with their current records.
    public var entries: [String: KeyRecord] { state.withLock { $0.entries } }

    /// True when the set was confirmed on the current connection; false before the first answer
    /// and from a lost connection until the reconciliation after the next one.
    public var isSynced: Bool { state.withLock { $0.synced } }

    /// The set's changes. Unread events of one key merge into their net effect, so a slow reader
    /// costs memory bounded by the set's size, never by the rate of change.
    public var events: ListEvents { ListEvents(buffer: buffer) }

    /// Ends the subscription: its watch is closed at once and ``events`` ends after the unread ones.
    public func unsubscribe() async {
        let first = state.withLock { s -> Bool in
            defer { s.ended = true }
            return !s.ended
        }
        guard first else { return }
        buffer.finish()
        await client.release(self)
    }

    // MARK: From the client actor

    /// One page of an answer (the `initial` records a watch sends first, after a reconnect and
    /// after falling behind). Each page is compared with the set as it arrives, so events flow
    /// while a large set is still coming; keys the answer never mentioned are removed after its
    /// last page (`more` false), which closes it with `.synced`. Compared, not replaced, so
    /// nothing that changed while away is missed and nothing stale is kept.
    func applyInitial(_ records: [RecordInfo], more: Bool) {
        let events = state.withLock { s -> [ListEvent] in
            guard !s.ended else { return [] }
            let cause: ListEvent.Cause = s.haveInitial ? .resync : .initial
            var events: [ListEvent] = []
            // Taken out of the state while it grows, so inserting never copies the whole set.
            var seen = s.seen ?? []
            s.seen = nil
            for info in records where info.kind == "value" {
                let record = KeyRecord(info)
                seen.insert(record.key)
                if let old = s.entries.updateValue(record, forKey: record.key) {
                    if old != record { events.append(.updated(record, cause)) }
                } else {
                    events.append(.added(record, cause))
                }
            }
            guard !more else {
                s.seen = seen
                return events
            }
            for key in s.entries.keys.filter({ !seen.contains($0) }).sorted() {
                s.entries.removeValue(forKey: key)
                events.append(.removed(key: key, cause))
            }
            events.append(.synced(cause))
            s.seen = nil
            s.haveInitial = true
            s.synced = true
            return events
        }
        buffer.push(events)
    }

    /// A live change from the watch.
    func apply(_ event: WatchEvent) {
        let out = state.withLock { s -> ListEvent? in
            guard !s.ended else { return nil }
            switch event.kind {
            case .changed:
                guard let info = event.record, info.kind == "value" else { return nil }
                let record = KeyRecord(info)
                let old = s.entries.updateValue(record, forKey: record.key)
                if let old { return old == record ? nil : .updated(record, .live) }
                return .added(record, .live)
            case .removed:
                guard let key = event.key ?? event.record?.key, s.entries.removeValue(forKey: key) != nil else { return nil }
                return .removed(key: key, .live)
            case .fellBehind:
                // The agent sends the whole set again at once; it is compared like a reconnect's.
                s.seen = nil
                s.synced = false
                return .fellBehind
            case .initial, .state:
                return nil
            }
        }
        if let out { buffer.push([out]) }
    }

    func connectionLost() {
        let wasSynced = state.withLock { s -> Bool in
            defer {
                s.synced = false
                s.seen = nil
            }
            return s.synced && !s.ended
        }
        if wasSynced { buffer.push([.connectionLost]) }
    }

    /// The client closed.
    func end() {
        state.withLock { $0.ended = true }
        buffer.finish()
    }
}
