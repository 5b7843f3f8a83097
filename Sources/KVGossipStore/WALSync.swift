import Foundation
import Synchronization

/// Syncs the store's write-ahead log from outside SQLite, for commits made with
/// `synchronous = NORMAL` (records from peers: Docs/architecture.md §Durability). Such a commit is
/// in the log, and survives the agent being killed, as soon as it returns; this makes it survive a
/// power cut too. `fdatasync` on any descriptor of the log flushes the whole file, so a sync also
/// covers every commit appended before it, and runs beside the writer's next commit instead of
/// holding it up.
final class WALSync: Sendable {
    var path: String { log.path }
    private let log: WALFile
    /// Syncs that returned (for tests).
    var completed: Int { syncs.load(ordering: .relaxed) }
    private let syncs = Atomic<Int>(0)
    /// Commits made to be synced here, and how many of them a sync has covered: a sync covers
    /// every commit counted before it began.
    private let committedCount = Atomic<Int>(0)
    private let syncedCount = Mutex<Int>(0)
    /// The first failed sync. After it nothing this store commits may be acknowledged: the kernel
    /// may have dropped the log's pages, and a later fdatasync can succeed without them.
    private let failure = Mutex<WALSyncError?>(nil)

    /// The call that syncs a descriptor: `fdatasync`, or a stand-in in tests.
    private let syncFile: @Sendable (Int32) -> Int32

    init(databasePath: String, syncFile: @escaping @Sendable (Int32) -> Int32 = { fdatasync($0) }) {
        log = WALFile(databasePath: databasePath)
        self.syncFile = syncFile
    }

    /// Counts a commit that `sync` must cover; called on the writer's queue just before it, so a
    /// reader that sees the commit also sees the count (one that fails only costs a spare sync).
    func willCommit() {
        committedCount.add(1, ordering: .sequentiallyConsistent)
    }

    /// Returns once everything committed to the log so far is on disk.
    func sync() throws {
        try refuseAfterFailure()
        let target = committedCount.load(ordering: .sequentiallyConsistent)
        if let code = syncLog() {
            throw latch(errno: code)
        }
        syncedCount.withLock { $0 = max($0, target) }
        syncs.add(1, ordering: .relaxed)
    }

    /// Syncs the log if there is one; the errno of a failure.
    private func syncLog() -> Int32? {
        do {
            guard let opened = try log.current() else { return nil }
            return withExtendedLifetime(opened) { syncFile(opened.fd) == 0 ? nil : errno }
        } catch {
            return error.errno
        }
    }

    /// Syncs if some counted commit is not covered yet.
    func syncIfBehind() throws {
        try refuseAfterFailure()
        if syncedCount.withLock({ $0 }) < committedCount.load(ordering: .sequentiallyConsistent) { try sync() }
    }

    /// The first failed sync, if there was one.
    var failed: WALSyncError? { failure.withLock { $0 } }

    /// Records a failure SQLite met itself while writing or syncing the log inside a commit: from
    /// then on this store is as untrustworthy as after a failed `sync`. Returns the failure kept.
    @discardableResult
    func latch(errno code: Int32) -> WALSyncError {
        failure.withLock { kept in
            if kept == nil { kept = WALSyncError(path: path, errno: code) }
            return kept!
        }
    }

    /// Throws the first failed sync, if there was one.
    func refuseAfterFailure() throws {
        if let failed { throw failed }
    }
}

struct WALSyncError: Error, CustomStringConvertible {
    let path: String
    let errno: Int32

    var description: String {
        "cannot sync the store's log \(path): \(String(cString: strerror(errno))); this agent accepts no more writes until it is restarted"
    }
}
