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

    private struct State {
        var entries: [String: Value] = [:]
        var bytes = 0
        var generation: UInt64 = 0
    }

    private let state = Mutex(State())
    private let budgetBytes: Int

    init(budgetBytes: Int) {
        self.budgetBytes = budgetBytes
    }

    enum Lookup {
        case hit(Value)
        case miss(Ticket)
    }

    func lookup(_ path: String) -> Lookup {
        state.withLock { st in
            if let value = st.entries[path] { return .hit(value) }
            return .miss(Ticket(generation: st.generation))
        }
    }

    func insert(_ path: String, _ value: Value, ticket: Ticket) {
        guard value.bytes.count <= budgetBytes / 4 else { return }
        state.withLock { st in
            guard st.generation == ticket.generation, st.entries[path] == nil else { return }
            while st.bytes + value.bytes.count > budgetBytes, let victim = st.entries.first {
                st.entries.removeValue(forKey: victim.key)
                st.bytes -= victim.value.bytes.count
            }
            st.entries[path] = value
            st.bytes += value.bytes.count
        }
    }

    /// Folds in committed changes. Two commits may publish in either order, so an entry is only
    /// ever replaced by a newer version.
    func observe(_ changes: [StoreChange]) {
        state.withLock { st in
            st.generation &+= 1
            for change in changes {
                switch change {
                case .record(let record, _):
                    let path = record.key.path
                    guard let old = st.entries[path], old.version < record.version else { continue }
                    st.bytes -= old.bytes.count
                    if record.kind == .value {
                        st.entries[path] = Value(version: record.version, bytes: record.value)
                        st.bytes += record.value.count
                    } else {
                        st.entries.removeValue(forKey: path)
                    }
                case .unset(let key, _):
                    if let old = st.entries.removeValue(forKey: key.path) { st.bytes -= old.bytes.count }
                case .revocation:
                    continue
                }
            }
        }
    }
}
