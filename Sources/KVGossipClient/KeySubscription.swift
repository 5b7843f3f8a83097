import Synchronization

/// One subscriber's handle on a key, from ``KVClient/subscribeKey(_:)``.
///
/// All subscriptions to a key share the client's single interest in it, so reading `value` is a
/// local lookup, not a request. Call ``unsubscribe()`` when done; the interest outlives the last
/// subscription by the client's cull delay.
public final class KeySubscription: Sendable {
    /// The subscribed key.
    public let key: String
    let id: UInt64
    let interest: KeyInterest
    private let client: KVClient
    /// What the subscription showed when it was released, so reads after `unsubscribe()` stay
    /// stable instead of following an interest that may be forgotten.
    private let released = Mutex<(value: KeyValue, dirtiness: Dirtiness)?>(nil)

    init(key: String, id: UInt64, interest: KeyInterest, client: KVClient) {
        self.key = key
        self.id = id
        self.interest = interest
        self.client = client
    }

    /// The key's current value as far as the client knows (``KeyValue/unknown`` until the first
    /// answer). Check ``dirtiness`` to know whether it is confirmed.
    public var value: KeyValue { released.withLock { $0?.value } ?? interest.value }

    /// Why the value may not be the cluster's (or ``Dirtiness/synced``).
    public var dirtiness: Dirtiness { released.withLock { $0?.dirtiness } ?? interest.dirtiness }

    /// Shorthand for `dirtiness.isDirty`: true before the first answer on the current connection,
    /// while disconnected, and while the agent reports the key dirty.
    public var isDirty: Bool { dirtiness.isDirty }

    /// The key's values: the current one first, then each change. Holds only the newest unread
    /// value, so a slow reader skips intermediate values rather than queueing them. Each access
    /// makes a new stream; all end at ``unsubscribe()`` (or when the client closes).
    public var valueChanges: AsyncStream<KeyValue> { interest.valueStream(owner: id) }

    /// The key's dirtiness: the current one first, then each change, newest-only like
    /// ``valueChanges``.
    public var dirtinessChanges: AsyncStream<Dirtiness> { interest.dirtinessStream(owner: id) }

    /// Ends this subscription and its streams. The key's interest is culled once the client's cull
    /// delay passes with no subscription left. Calling it again does nothing.
    public func unsubscribe() async {
        let first = released.withLock { snapshot -> Bool in
            guard snapshot == nil else { return false }
            snapshot = (interest.value, interest.dirtiness)
            return true
        }
        guard first else { return }
        await client.release(self)
    }
}
