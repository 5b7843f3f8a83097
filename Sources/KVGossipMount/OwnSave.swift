import KVGossipCore
import KVGossipStore

/// The save a mount's handler is minting on this thread. The store tells its commit observers on
/// the committing thread, so the mount's observer can tell its own save, which the handler shows
/// itself, from a change the follower must replay, and leave the follower asleep for it (a
/// thread wake-up per save, on the path of every write through the mount).
struct OwnSave: Sendable {
    /// Which mount (one process may hold several) and which key.
    let mount: ObjectIdentifier
    let key: Key

    /// Bound while `MountCore.commitOutsideLock` mints, on a FUSE thread (outside any task, where a
    /// task-local is kept per thread). A task created meanwhile on that thread inherits the value
    /// (the gossip engine starts pushes from its commit observer), so it counts only outside tasks
    /// (`isCurrent`).
    @TaskLocal static var current: OwnSave?

    /// Whether `changes` are the save this thread is minting for the mount `mount`.
    static func isCurrent(_ changes: [StoreChange], of mount: ObjectIdentifier) -> Bool {
        guard withUnsafeCurrentTask(body: { $0 == nil }), let save = current else { return false }
        return save.isOnly(changes, of: mount)
    }

    /// Whether `changes` are nothing but this save's record, committed for the mount `mount`.
    func isOnly(_ changes: [StoreChange], of mount: ObjectIdentifier) -> Bool {
        guard mount == self.mount, !changes.isEmpty else { return false }
        return changes.allSatisfy { change in
            if case .record(let record, _, .local) = change { record.key == key } else { false }
        }
    }
}
