import KVGossipControl
import KVGossipCore

/// One record of an agent's answer after the client checked it (``RecordCheck``).
struct CheckedRecord: Sendable, Hashable {
    /// The key the agent said the record is of; the verified record's own key when it verified.
    let key: String
    /// The verified record, or why it was not delivered.
    let result: Result<KeyRecord, KVClientError>
    /// The agent's dirtiness of the key (`synced`, `pending-push`, …): its opinion, not checkable.
    let agentState: String

    var record: KeyRecord? { try? result.get() }
    var failure: KVClientError? {
        if case .failure(let error) = result { error } else { nil }
    }
}

/// A watch answer whose records were checked, as the key interests and list subscriptions apply it.
/// Checking happens on the watch's own task, before the answer reaches the client actor, so the
/// signatures of a large answer are not verified inside the actor.
struct CheckedEvent: Sendable {
    var kind: WatchEvent.Kind
    /// changed, removed, state: the key the agent names.
    var key: String?
    /// changed, removed: the new value or tombstone (a removal by revocation carries none).
    var record: CheckedRecord?
    /// initial: this page's records.
    var records: [CheckedRecord] = []
    /// initial (one key), state: the agent's dirtiness.
    var state: String?
    /// initial: more pages follow.
    var more = false
    /// state: the keys now in `state`.
    var keys: [String]?

    init(kind: WatchEvent.Kind) { self.kind = kind }

    /// `event` with each of its records checked; `wanted` says which keys the watch asked for.
    init(_ event: WatchEvent, check: RecordCheck, wanted: (Key) -> Bool) {
        kind = event.kind
        key = event.key
        record = event.record.map { check.check($0, wanted: wanted) }
        records = (event.records ?? []).map { check.check($0, wanted: wanted) }
        state = event.state
        more = event.more == true
        keys = event.keys
    }
}
