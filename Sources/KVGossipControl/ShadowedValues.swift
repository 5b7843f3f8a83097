import KVGossipCore
import KVGossipStore
import NIOPosix
import Synchronization

/// The values the mount hides because a directory of the same name exists (Docs/filesystem.md
/// §Mapping), for `status`, kept current without reading the tree on every call.
///
/// A value is shadowed when its key holds a value and some key below it holds one too. A commit
/// can change that only for the keys whose value appeared or went and for their ancestors, so each
/// commit notes those keys (on the committing thread: a set insertion) and a background pass
/// re-evaluates them with two indexed probes each. The whole set is built once by a key-ordered
/// scan at start; if the noted keys outgrow `pendingLimit` (a large sync), they are dropped for a
/// new scan, which then costs less than the probes.
public final class ShadowedValues: Sendable {
    /// Keys `status` lists; `total` counts them all.
    public static let listed = 100
    static let pendingLimit = 50_000
    static let stepRows = 2_000

    public struct Snapshot: Sendable, Equatable {
        /// The first `listed` shadowed keys in key order.
        public var first: [String]
        public var total: Int
        /// False while noted changes or the scan are still to be folded in.
        public var upToDate: Bool
    }

    private struct State {
        var keys = Set<String>()
        var pending = Set<Key>()
        /// The cursor of a scan in progress (`.some(nil)`: from the start); nil when none runs.
        var scan: String?? = .some(nil)
        var settled: Bool { pending.isEmpty && scan == nil }
    }

    private let store: Store
    private let state = Mutex(State())
    /// Serialises the passes, so a scan step and a re-evaluation never interleave their reads and writes.
    private let work = Mutex(())
    private let wake: AsyncStream<Void>.Continuation
    private let observation: Mutex<CommitObservation?> = Mutex(nil)

    public init(store: Store) {
        self.store = store
        let (signals, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        self.wake = wake
        let observation = store.observeCommits { [weak self] changes in self?.note(changes) }
        self.observation.withLock { $0 = observation }
        Task.detached(priority: .background) { [weak self] in
            for await _ in signals {
                // A failed read waits for the next commit (or `status`) to try again.
                while let self, !self.isSettled {
                    do { try await NIOThreadPool.singleton.runIfActive { try self.step(budget: Self.stepRows, scanning: true) } } catch { break }
                }
            }
        }
        wake.yield()
    }

    deinit {
        wake.finish()
        observation.withLock { $0?.cancel() }
    }

    var isSettled: Bool { state.withLock { $0.settled } }

    /// Folds in up to `budget` noted keys (blocking: reads the store), then returns the set as it
    /// stands. A scan in progress is left to the background: it reads the whole tree.
    public func snapshot(settlingUpTo budget: Int) throws -> Snapshot {
        if !isSettled, state.withLock({ $0.scan == nil }) { try step(budget: budget, scanning: false) }
        return state.withLock { s in
            Snapshot(first: Self.smallest(Self.listed, of: s.keys), total: s.keys.count, upToDate: s.settled)
        }
    }

    /// On the committing thread: only notes which keys to look at again.
    private func note(_ changes: [StoreChange]) {
        var touched: [Key] = []
        for change in changes {
            switch change {
            case .record(let record, let previous, _):
                // A new value over a value (or a tombstone over a tombstone) leaves every key's shadowing as it was.
                if (record.kind == .value) != (previous?.kind == .value) { touched.append(record.key) }
            case .unset(let key, let previous):
                if previous.kind == .value { touched.append(key) }
            case .revocation:
                break
            }
        }
        guard !touched.isEmpty else { return }
        state.withLock { s in
            for key in touched {
                var at: Key? = key
                while let k = at, s.pending.insert(k).inserted { at = k.parent }
            }
            if s.pending.count > Self.pendingLimit {
                s.pending.removeAll()
                s.scan = .some(nil)
            }
        }
        wake.yield()
    }

    /// One pass: a step of the scan if one runs (and `scanning`), else a batch of noted keys.
    private func step(budget: Int, scanning: Bool) throws {
        try work.withLock { _ in
            if let scan = state.withLock({ $0.scan }) {
                guard scanning else { return }
                let (found, next) = try store.valuesWithValuesBelow(after: scan, rowLimit: budget)
                state.withLock { s in
                    // Everything in (scan, next] was read just now: what the set held there is replaced.
                    s.keys = s.keys.filter { !Self.within($0, after: scan, upTo: next) }
                    s.keys.formUnion(found)
                    s.scan = next.map { .some($0) }
                }
                return
            }
            let batch = state.withLock { s -> [Key] in
                let taken = Array(s.pending.prefix(budget))
                for key in taken { s.pending.remove(key) }
                return taken
            }
            guard !batch.isEmpty else { return }
            let shadowed = try store.valuesWithValuesBelow(among: batch)
            state.withLock { s in
                for key in batch {
                    if shadowed.contains(key.path) { s.keys.insert(key.path) } else { s.keys.remove(key.path) }
                }
            }
        }
    }

    static func within(_ key: String, after lower: String?, upTo upper: String?) -> Bool {
        (lower.map { $0.utf8.lexicographicallyPrecedes(key.utf8) } ?? true)
            && (upper.map { !$0.utf8.lexicographicallyPrecedes(key.utf8) } ?? true)
    }

    /// The `n` smallest keys in byte order, without sorting the whole set.
    static func smallest(_ n: Int, of keys: Set<String>) -> [String] {
        var out: [String] = []
        for key in keys {
            if out.count == n, let last = out.last, !key.utf8.lexicographicallyPrecedes(last.utf8) { continue }
            let at = out.partitioningIndex { key.utf8.lexicographicallyPrecedes($0.utf8) }
            out.insert(key, at: at)
            if out.count > n { out.removeLast() }
        }
        return out
    }
}

extension Array {
    /// The first index whose element satisfies `belongsAfter`, for an array already partitioned by it.
    func partitioningIndex(where belongsAfter: (Element) -> Bool) -> Int {
        var low = 0, high = count
        while low < high {
            let mid = (low + high) / 2
            if belongsAfter(self[mid]) { high = mid } else { low = mid + 1 }
        }
        return low
    }
}
