import KVGossipCore
import KVGossipStore
import Synchronization

/// The newest stored value of keys read recently, so opening a key costs no SQLite read.
///
/// It never lags the store: the store's commit observer updates or drops an entry before the write
/// that changed it returns. That observer can run on a FUSE worker that holds the state lock (a
/// mint through the mount), so this cache has its own lock and never takes the state lock.
final class ValueCache: Sendable {
    struct Value: Sendable {
        let version: RecordVersion
        let bytes: [UInt8]
    }

    /// Marks the moment a lookup missed; an insert made with it is refused if any change was
    /// observed since, because the value read from the store may already be old.
    struct Ticket: Sendable {
        fileprivate let generation: UInt64
    }

    fileprivate struct State {
        struct Slot {
            let value: Value
            /// When the entry was put: its place in `order`.
            let stamp: UInt64
        }

        var entries: [String: Slot] = [:]
        /// Paths with the stamp of their put, oldest from `oldest` on: the eviction order. A place
        /// whose stamp is no longer its path's (the entry was dropped, or dropped and put again) is
        /// skipped when its turn comes, and left out when the list is compacted.
        var order: [(path: String, stamp: UInt64)] = []
        var oldest = 0
        var nextStamp: UInt64 = 0
        /// The entries' charges (`ValueCache.charge`), at most the budget.
        var bytes = 0
        var generation: UInt64 = 0
    }

    private let state = Mutex(State())
    private let budgetBytes: Int

    /// What one entry costs against the budget: its value bytes, its path, and the fixed cost of an
    /// entry (the dictionary slot, the path's and the value's heap blocks, the version). Counting
    /// value bytes alone let a tree of small values fill the cache with a million entries of a few
    /// bytes each, some 250 bytes of heap apiece, far past the budget.
    static func charge(path: String, bytes: Int) -> Int {
        bytes + path.utf8.count + 200
    }

    init(budgetBytes: Int) {
        self.budgetBytes = budgetBytes
    }

    enum Lookup {
        case hit(Value)
        case miss(Ticket)
    }

    func lookup(_ path: String) -> Lookup {
        state.withLock { st in
            if let slot = st.entries[path] { return .hit(slot.value) }
            return .miss(Ticket(generation: st.generation))
        }
    }

    func insert(_ path: String, _ value: Value, ticket: Ticket) {
        state.withLock { st in
            guard st.generation == ticket.generation, st.entries[path] == nil else { return }
            st.put(path, value, budget: budgetBytes)
        }
    }

    /// Folds in committed changes. Two commits may publish in either order, so a newer value
    /// replaces an entry and anything else (a tombstone, an unset, an older version published
    /// late, which may trail an unset not yet published) drops it: the next open reads the store.
    func observe(_ changes: [StoreChange]) {
        state.withLock { st in
            st.generation &+= 1
            for change in changes {
                switch change {
                case .record(let record, _, _):
                    let path = record.key.path
                    guard let old = st.entries[path]?.value else { continue }
                    st.drop(path)
                    if record.kind == .value, old.version < record.version {
                        st.put(path, Value(version: record.version, bytes: record.value), budget: budgetBytes)
                    }
                case .unset(let key, _):
                    st.drop(key.path)
                case .revocation:
                    continue
                }
            }
        }
    }
}

extension ValueCache.State {
    /// Adds an entry, evicting the oldest others to stay within `budget`; values over a quarter of
    /// it are not kept at all.
    ///
    /// Victims go in the order they were put, not in the dictionary's order: evicting from the
    /// first buckets on empties the low end of the table while new entries hash everywhere, so the
    /// rest packs into long runs that every lookup then probes key by key (a million-key tree spent
    /// 90 % of its reads comparing paths).
    mutating func put(_ path: String, _ value: ValueCache.Value, budget: Int) {
        let cost = ValueCache.charge(path: path, bytes: value.bytes.count)
        guard cost <= budget / 4 else { return }
        while bytes + cost > budget, oldest < order.count {
            let victim = order[oldest]
            oldest += 1
            if entries[victim.path]?.stamp == victim.stamp { drop(victim.path) }
        }
        nextStamp += 1
        entries[path] = Slot(value: value, stamp: nextStamp)
        bytes += cost
        order.append((path, nextStamp))
        compactOrder()
    }

    /// Keeps `order` within about twice the entries, dropping places that are spent or stale.
    /// Linear in the entries, but only after at least as many puts, so a put costs O(1) on average.
    private mutating func compactOrder() {
        guard order.count > 2 * entries.count + 64 else { return }
        order = order[oldest...].filter { entries[$0.path]?.stamp == $0.stamp }
        oldest = 0
    }

    mutating func drop(_ path: String) {
        if let old = entries.removeValue(forKey: path) { bytes -= ValueCache.charge(path: path, bytes: old.value.bytes.count) }
    }
}
