import KVGossipStore
import Synchronization

/// The store's counts for `status`, counted by SQL and kept until the tree hash moves: polling an
/// idle agent costs nothing, and a busy one counts at most once per change of its tree.
final class StatusCounts: Sendable {
    private let store: Store
    private let last = Mutex<Store.Counts?>(nil)

    init(store: Store) {
        self.store = store
    }

    /// The counts last taken, whatever the tree is now (nil before the first).
    var lastCounted: Store.Counts? { last.withLock { $0 } }

    /// Blocking: counts unless the tree is as it was when last counted.
    func current() throws -> Store.Counts {
        if let cached = lastCounted, cached.treeHash == store.treeHash { return cached }
        let fresh = try store.counts()
        last.withLock { $0 = fresh }
        return fresh
    }
}
