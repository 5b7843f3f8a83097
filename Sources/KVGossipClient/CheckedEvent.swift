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
    static func checking(_ event: WatchEvent, with check: RecordCheck, wanted: @escaping @Sendable (Key) -> Bool) async -> CheckedEvent {
        var out = CheckedEvent(kind: event.kind)
        out.key = event.key
        out.record = event.record.map { check.check($0, wanted: wanted) }
        out.records = await check.check(event.records ?? [], wanted: wanted)
        out.state = event.state
        out.more = event.more == true
        out.keys = event.keys
        return out
    }
}
