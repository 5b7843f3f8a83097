import Foundation
import GRDB
import GRDBSQLite

/// Copies the write-ahead log back into the database file on a thread and connection of its own,
/// so the writer does not.
///
/// SQLite's automatic checkpoint runs in the connection that commits, right after the commit: the
/// write that crosses the threshold waits while 32 MB of pages are copied and the database file is
/// synced, and a sync session's next batch waits behind it. Here the writer's WAL hook (called after
/// each commit with the log's page count) only wakes this thread once the log holds
/// `wakeAtPages`; a PASSIVE checkpoint runs beside the writer (it takes no write lock, and
/// commits go on appending to the log meanwhile). Should this thread fall far behind, the writer
/// checkpoints itself at `writerCheckpointsAtPages`, as SQLite would have.
///
/// The same hook reads the log ahead of the writer (`WALReadAhead`), so a commit does not wait
/// for pages of the log the kernel dropped from its cache.
///
/// Durability is unchanged: a commit is on disk once the WAL is synced; a checkpoint only moves
/// pages that are durable already (Docs/architecture.md §Durability).
final class WALCheckpointer: @unchecked Sendable {
    /// 32 MB of 4 KB pages (SQLite's own default is 1,000 pages): a sync of a large tree writes
    /// tens of MB, and each checkpoint syncs the database file once. While commits keep coming, a
    /// checkpoint rarely catches the log's end (the writer appends while it copies), so the log
    /// does not start over and its count keeps growing; the thread then copies again only after
    /// another quarter of the mark has been written.
    let wakeAtPages: Int32
    /// Twice the mark: the log file on disk stays under about 64 MB plus one transaction.
    let writerCheckpointsAtPages: Int32

    private let connection: DatabaseQueue
    /// Reads the log ahead of the writer: told of each commit by the hook, and of commits about
    /// to begin by the store (from any thread; it locks what it keeps). Nil with a window of 0.
    let readAhead: WALReadAhead?
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var requested = false
    private var stopped = false
    private var completed = 0
    /// The log's page count when the last checkpoint was asked for.
    private var pagesAtLastRequest: Int32 = 0
    /// Signalled by the thread as it ends.
    private let ended = DispatchSemaphore(value: 0)

    /// The default of `wakeAtPages`.
    static let defaultWakeAtPages: Int32 = 8192

    /// - Parameter readAheadWindow: bytes of log read ahead of the writer at a time; 0 reads none.
    init(
        path: String, wakeAtPages: Int32 = defaultWakeAtPages, writerCheckpointsAtPages: Int32 = 16384,
        readAheadWindow: Int = WALReadAheadPlan.defaultWindow
    ) throws {
        self.wakeAtPages = wakeAtPages
        self.writerCheckpointsAtPages = writerCheckpointsAtPages
        var config = Configuration()
        config.busyMode = .timeout(10)
        // A checkpoint syncs the log before copying and the database file after: said here rather
        // than left to the SQLite build's default.
        config.prepareDatabase { try $0.execute(sql: "PRAGMA synchronous = FULL") }
        connection = try DatabaseQueue(path: path, configuration: config)
        let pageSize = try connection.read { try Int.fetchOne($0, sql: "PRAGMA page_size") }
        readAhead = if readAheadWindow > 0, let pageSize { WALReadAhead(databasePath: path, pageSize: pageSize, window: readAheadWindow) } else { nil }
        startNamedThread("kvg-checkpoint") { [self] in
            run()
            ended.signal()
        }
    }

    /// Installs the hook on the writer connection. `stop` must be called before this object goes.
    func attach(to writer: DatabasePool) throws {
        let context = Unmanaged.passUnretained(self).toOpaque()
        writer.writeWithoutTransaction { db in
            // The hook replaces SQLite's automatic checkpoint (which is itself a WAL hook).
            // `frames`: the log's frames (pages with their headers) after the commit.
            _ = sqlite3_wal_hook(db.sqliteConnection, { context, handle, _, frames in
                guard let context else { return SQLITE_OK }
                let checkpointer = Unmanaged<WALCheckpointer>.fromOpaque(context).takeUnretainedValue()
                checkpointer.readAhead?.afterCommit(frames: frames)
                if frames >= checkpointer.writerCheckpointsAtPages {
                    // Behind by this much: the writer copies, as SQLite's own hook would.
                    sqlite3_wal_checkpoint_v2(handle, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
                } else if frames >= checkpointer.wakeAtPages {
                    checkpointer.request(pages: frames)
                }
                return SQLITE_OK
            }, context)
        }
    }

    /// Removes the hook from the writer and ends the thread.
    func detach(from writer: DatabasePool) {
        writer.writeWithoutTransaction { db in _ = sqlite3_wal_hook(db.sqliteConnection, nil, nil) }
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    /// Detaches, waits for the thread to end (a checkpoint under way finishes first) and closes
    /// this object's connection, so that the writer can be the store's last connection to close.
    func close(from writer: DatabasePool) throws {
        detach(from: writer)
        ended.wait()
        try connection.close()
    }

    /// Checkpoints completed by the thread (for tests).
    var checkpointsCompleted: Int {
        condition.lock()
        defer { condition.unlock() }
        return completed
    }

    /// Whether a commit that left the log at `pages` (at or past the mark) asks for a checkpoint,
    /// the last ask having been at `lastAsked` (0 when none is outstanding): yes once another
    /// quarter of the mark has been written since, or when the log started over (its count went
    /// down). Otherwise every commit past the mark would wake the thread while it copies.
    static func asksAgain(pages: Int32, lastAsked: Int32, mark: Int32) -> Bool {
        pages < lastAsked || pages >= lastAsked + mark / 4
    }

    private func request(pages: Int32) {
        condition.lock()
        defer { condition.unlock() }
        guard Self.asksAgain(pages: pages, lastAsked: pagesAtLastRequest, mark: wakeAtPages) else { return }
        pagesAtLastRequest = pages
        requested = true
        condition.signal()
    }

    private func run() {
        while true {
            condition.lock()
            while !requested && !stopped { condition.wait() }
            if stopped {
                condition.unlock()
                return
            }
            requested = false
            condition.unlock()
            let done = (try? connection.writeWithoutTransaction { db in try db.checkpoint(.passive) }) != nil
            condition.lock()
            if done {
                completed += 1
            } else {
                // Busy (the writer's own checkpoint was running) or failed: the next commit past
                // the mark asks again.
                pagesAtLastRequest = 0
            }
            condition.unlock()
        }
    }
}
