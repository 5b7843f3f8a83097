import Foundation
import Synchronization

/// Syncs the store's write-ahead log from outside SQLite, for commits made with
/// `synchronous = NORMAL` (records from peers: Docs/architecture.md §Durability). Such a commit is
/// in the log, and survives the agent being killed, as soon as it returns; this makes it survive a
/// power cut too. `fdatasync` on any descriptor of the log flushes the whole file, so a sync also
/// covers every commit appended before it, and runs beside the writer's next commit instead of
/// holding it up.
final class WALSync: Sendable {
    /// One open descriptor of the log, closed when the last sync using it is done.
    private final class LogFile: Sendable {
        let fd: Int32
        let device: UInt64
        let inode: UInt64

        init?(path: String) {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return nil }
            var st = stat()
            guard fstat(fd, &st) == 0 else {
                let failed = errno
                close(fd)
                errno = failed
                return nil
            }
            self.fd = fd
            device = UInt64(st.st_dev)
            inode = UInt64(st.st_ino)
        }

        deinit { close(fd) }
    }

    let path: String
    private let file = Mutex<LogFile?>(nil)
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
        path = databasePath + "-wal"
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
        do {
            if let log = try current(), syncFile(log.fd) != 0 { throw WALSyncError(path: path, errno: errno) }
        } catch let error as WALSyncError {
            failure.withLock { if $0 == nil { $0 = error } }
            throw error
        }
        syncedCount.withLock { $0 = max($0, target) }
        syncs.add(1, ordering: .relaxed)
    }

    /// Syncs if some counted commit is not covered yet.
    func syncIfBehind() throws {
        try refuseAfterFailure()
        if syncedCount.withLock({ $0 }) < committedCount.load(ordering: .sequentiallyConsistent) { try sync() }
    }

    /// The first failed sync, if there was one.
    var failed: WALSyncError? { failure.withLock { $0 } }

    /// Throws the first failed sync, if there was one.
    func refuseAfterFailure() throws {
        if let failed { throw failed }
    }

    /// The open log, reopened if SQLite replaced the file; nil when there is no log, in which case
    /// SQLite checkpointed it into the database (syncing that) and removed it.
    private func current() throws -> LogFile? {
        var st = stat()
        guard stat(path, &st) == 0 else {
            if errno == ENOENT { return nil }
            throw WALSyncError(path: path, errno: errno)
        }
        return try file.withLock { file in
            if let open = file, open.device == UInt64(st.st_dev), open.inode == UInt64(st.st_ino) { return open }
            guard let reopened = LogFile(path: path) else { throw WALSyncError(path: path, errno: errno) }
            file = reopened
            return reopened
        }
    }
}

struct WALSyncError: Error, CustomStringConvertible {
    let path: String
    let errno: Int32

    var description: String {
        "cannot sync the store's log \(path): \(String(cString: strerror(errno))); this agent accepts no more writes until it is restarted"
    }
}
