import KVGossipControl
import Synchronization

/// The client's shared knowledge of one key: every subscription to the key reads and streams
/// from the same interest, which is fed by one watch on the current connection.
///
/// State sits behind a mutex rather than in the client actor so subscriptions can answer `value`
/// and `dirtiness` synchronously. Streams are `bufferingNewest(1)`: a consumer that falls behind
/// sees the latest value when it looks again, and never holds up the client or other subscribers.
final class KeyInterest: Sendable {
    let key: String

    private struct State {
        var value: KeyValue = .unknown
        var dirtiness: Dirtiness
        /// The agent's last reported state for the key, kept across the connection's own states
        /// so an answer that carries no state (a removal) does not lose it.
        var agentState = "synced"
        /// Whether the watch's `initial` answer arrived on the current connection. The agent sends
        /// dirtiness from a task of its own, so a `state` event can overtake `initial`; until
        /// the answer is in, the key stays dirty whatever the agent's state.
        var answered = false
        /// Subscriptions still attached; a stream asked for by any other gets finished at once.
        var owners: Set<UInt64> = []
        var valueSinks: [UInt64: (owner: UInt64, sink: AsyncStream<KeyValue>.Continuation)] = [:]
        var dirtinessSinks: [UInt64: (owner: UInt64, sink: AsyncStream<Dirtiness>.Continuation)] = [:]
        var nextSink: UInt64 = 0
        var ended = false
    }

    private let state: Mutex<State>

    init(key: String, dirtiness: Dirtiness) {
        self.key = key
        state = Mutex(State(dirtiness: dirtiness))
    }

    var value: KeyValue { state.withLock { $0.value } }
    var dirtiness: Dirtiness { state.withLock { $0.dirtiness } }

    // MARK: Subscribers

    func attach(owner: UInt64) {
        state.withLock { _ = $0.owners.insert(owner) }
    }

    /// Finishes the owner's streams. Continuations are finished outside the lock because
    /// finishing runs their termination handlers, which take the lock to unregister.
    func detach(owner: UInt64) {
        let (values, dirtiness) = state.withLock { s in
            s.owners.remove(owner)
            let v = s.valueSinks.filter { $0.value.owner == owner }
            let d = s.dirtinessSinks.filter { $0.value.owner == owner }
            for id in v.keys { s.valueSinks.removeValue(forKey: id) }
            for id in d.keys { s.dirtinessSinks.removeValue(forKey: id) }
            return (v.values.map(\.sink), d.values.map(\.sink))
        }
        for c in values { c.finish() }
        for c in dirtiness { c.finish() }
    }

    /// The interest was culled or the client closed: end every stream and forget the value.
    func end() {
        let (values, dirtiness) = state.withLock { s in
            s.ended = true
            s.value = .unknown
            s.owners.removeAll()
            defer {
                s.valueSinks.removeAll()
                s.dirtinessSinks.removeAll()
            }
            return (s.valueSinks.values.map(\.sink), s.dirtinessSinks.values.map(\.sink))
        }
        for c in values { c.finish() }
        for c in dirtiness { c.finish() }
    }

    /// A new stream of values for `owner`, starting with the current one.
    func valueStream(owner: UInt64) -> AsyncStream<KeyValue> {
        stream(owner: owner, current: \.value, sinks: \.valueSinks)
    }

    /// A new stream of dirtiness for `owner`, starting with the current one.
    func dirtinessStream(owner: UInt64) -> AsyncStream<Dirtiness> {
        stream(owner: owner, current: \.dirtiness, sinks: \.dirtinessSinks)
    }

    /// Registers a latest-value stream in one of the sink tables; it unregisters itself when the
    /// consumer goes away. An owner already detached gets a finished stream.
    private func stream<T: Sendable>(
        owner: UInt64, current: KeyPath<State, T> & Sendable,
        sinks: WritableKeyPath<State, [UInt64: (owner: UInt64, sink: AsyncStream<T>.Continuation)]> & Sendable
    ) -> AsyncStream<T> {
        let (stream, continuation) = AsyncStream.makeStream(of: T.self, bufferingPolicy: .bufferingNewest(1))
        let registered = state.withLock { s -> Bool in
            guard !s.ended, s.owners.contains(owner) else { return false }
            s.nextSink += 1
            let id = s.nextSink
            s[keyPath: sinks][id] = (owner, continuation)
            continuation.yield(s[keyPath: current])
            continuation.onTermination = { [weak self] _ in
                _ = self?.state.withLock { $0[keyPath: sinks].removeValue(forKey: id) }
            }
            return true
        }
        if !registered { continuation.finish() }
        return stream
    }

    // MARK: Updates (from the client actor)

    /// The connection went away or a new one has not answered yet. The value is kept: a stale
    /// value marked dirty is more useful to a service than none.
    func setConnectionState(_ dirtiness: Dirtiness) {
        state.withLock { s in
            s.answered = false
            Self.publish(&s, dirtiness: dirtiness)
        }
    }

    /// One answer of this key's watch.
    func apply(_ event: WatchEvent) {
        state.withLock { s in
            switch event.kind {
            case .initial:
                let record = event.records?.first { $0.key == key }
                s.agentState = event.state ?? record?.state ?? s.agentState
                s.answered = true
                Self.publish(&s, value: KeyValue(record))
            case .changed, .removed:
                guard event.key == nil || event.key == key || event.record?.key == key else { return }
                if let record = event.record { s.agentState = record.state }
                Self.publish(&s, value: KeyValue(event.record))
            case .state:
                guard event.key == key || event.keys?.contains(key) == true, let agent = event.state else { return }
                s.agentState = agent
            case .fellBehind:
                // The agent sends the key's `initial` again right after, which sets everything.
                return
            }
            if s.answered { Self.publish(&s, dirtiness: .agent(s.agentState)) }
        }
    }

    // Yielding under the lock is safe (a yield never runs termination handlers) and keeps every
    // subscriber's order of values identical.
    private static func publish(_ s: inout State, value: KeyValue) {
        guard s.value != value else { return }
        s.value = value
        for entry in s.valueSinks.values { entry.sink.yield(value) }
    }

    private static func publish(_ s: inout State, dirtiness: Dirtiness) {
        guard s.dirtiness != dirtiness else { return }
        s.dirtiness = dirtiness
        for entry in s.dirtinessSinks.values { entry.sink.yield(dirtiness) }
    }
}
