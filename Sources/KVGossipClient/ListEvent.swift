/// One change to a list subscription's set of keys.
///
/// The set holds live values only: a tombstone or a revocation removes its key from the set.
public enum ListEvent: Sendable, Hashable, CustomStringConvertible {
    /// Why an event happened.
    public enum Cause: String, Sendable, Hashable {
        /// Part of the first answer: the set as it was when the subscription started.
        case initial
        /// A change the agent reported as it happened.
        case live
        /// Found by comparing the set after a reconnect with what the client held before it:
        /// the change happened while the client was not watching.
        case resync
    }

    /// A key entered the set.
    case added(KeyRecord, Cause)
    /// A key of the set has a new value.
    case updated(KeyRecord, Cause)
    /// A key left the set (deleted, or unset by a revocation).
    case removed(key: String, Cause)
    /// The set now matches the agent's: after the initial set (`.initial`) or after the events of
    /// a reconnect's reconciliation (`.resync`).
    case synced(Cause)
    /// The connection was lost; the set may be stale until the next `.synced(.resync)`.
    case connectionLost
    /// The agent dropped changes because this client read them too slowly (its backlog for the
    /// watch filled up); the set may be stale until the next `.synced(.resync)`, which follows
    /// without reconnecting.
    case fellBehind

    /// The key an added, updated or removed event is about.
    public var key: String? {
        switch self {
        case .added(let r, _), .updated(let r, _): r.key
        case .removed(let key, _): key
        case .synced, .connectionLost, .fellBehind: nil
        }
    }

    /// The cause of an added, updated, removed or synced event.
    public var cause: Cause? {
        switch self {
        case .added(_, let c), .updated(_, let c), .removed(_, let c), .synced(let c): c
        case .connectionLost, .fellBehind: nil
        }
    }

    /// A short form for logs, e.g. `added /app/a (initial)`.
    public var description: String {
        switch self {
        case .added(let r, let c): "added \(r.key) (\(c.rawValue))"
        case .updated(let r, let c): "updated \(r.key) (\(c.rawValue))"
        case .removed(let key, let c): "removed \(key) (\(c.rawValue))"
        case .synced(let c): "synced (\(c.rawValue))"
        case .connectionLost: "connection lost"
        case .fellBehind: "fell behind"
        }
    }

    /// Two unread events for one key as one, or nil when they cancel out. The reader never saw
    /// the first, so only the net effect on what it last saw matters.
    static func merge(_ old: ListEvent, _ new: ListEvent) -> ListEvent? {
        switch (old, new) {
        case (.added, .removed): nil
        case (.added, .updated(let r, let c)), (.added, .added(let r, let c)): .added(r, c)
        case (.removed, .added(let r, let c)), (.removed, .updated(let r, let c)): .updated(r, c)
        default: new
        }
    }
}
