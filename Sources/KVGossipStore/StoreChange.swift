import KVGossipCore
import Synchronization

/// One committed change, for the mount, watchers and push.
public enum StoreChange: Sendable, Equatable {
    /// A new winning record for its key (a value or a tombstone), and where it came from (which
    /// decides whether gossip spreads it further).
    case record(KVGossipCore.Record, previous: RecordVersion?, origin: CommitOrigin)
    /// The key lost its last valid chain to a revocation and is gone from this node's tree.
    case unset(Key, previous: RecordVersion)
    case revocation(Revocation)
}

/// Fans committed changes out to every subscriber. Buffers are unbounded on purpose: a watcher
/// that misses a change would show a stale file; the subscribers drain promptly.
final class ChangeFeed: Sendable {
    private let subscribers = Mutex<[Int: AsyncStream<StoreChange>.Continuation]>([:])
    private let observers = Mutex<[Int: @Sendable ([StoreChange]) -> Void]>([:])
    private let nextID = Atomic<Int>(0)

    func observe(_ body: @escaping @Sendable ([StoreChange]) -> Void) -> CommitObservation {
        let id = nextID.add(1, ordering: .relaxed).newValue
        observers.withLock { $0[id] = body }
        return CommitObservation { [weak self] in _ = self?.observers.withLock { $0.removeValue(forKey: id) } }
    }

    func subscribe() -> AsyncStream<StoreChange> {
        let (stream, continuation) = AsyncStream.makeStream(of: StoreChange.self)
        let id = nextID.add(1, ordering: .relaxed).newValue
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.removeValue(forKey: id) }
        }
        subscribers.withLock { $0[id] = continuation }
        return stream
    }

    func publish(_ changes: [StoreChange]) {
        guard !changes.isEmpty else { return }
        for observer in observers.withLock({ Array($0.values) }) { observer(changes) }
        let targets = subscribers.withLock { Array($0.values) }
        for c in targets {
            for change in changes { c.yield(change) }
        }
    }
}

/// Keeps a commit observer registered until `cancel()` (or until it is released). Other feeds of
/// synchronous observers (the node's dirtiness changes) hand out the same token.
public final class CommitObservation: Sendable {
    private let onCancel: Mutex<(@Sendable () -> Void)?>

    /// `onCancel` unregisters the observer; it runs once, at `cancel()` or release.
    public init(_ onCancel: @escaping @Sendable () -> Void) {
        self.onCancel = Mutex(onCancel)
    }

    public func cancel() {
        onCancel.withLock { body in
            body?()
            body = nil
        }
    }

    deinit { cancel() }
}
