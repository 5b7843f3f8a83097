import Foundation
import GRDB
import KVGossipTestSupport
import Testing
@testable import KVGossipStore

@Suite struct WALCheckpointerTests {
    /// A pool in WAL mode on a file of its own, with a table to fill.
    static func pool(_ directory: String) throws -> DatabasePool {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let pool = try DatabasePool(path: "\(directory)/db.sqlite")
        try pool.write { try $0.execute(sql: "CREATE TABLE t (n INTEGER PRIMARY KEY, blob BLOB NOT NULL)") }
        return pool
    }

    static func fill(_ pool: DatabasePool, rows: Range<Int>) throws {
        for n in rows {
            try pool.write { try $0.execute(sql: "INSERT INTO t (n, blob) VALUES (?, zeroblob(4000))", arguments: [n]) }
        }
    }

    static func size(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
    }

    /// Runs `body` with a fresh pool, a checkpointer attached to it with these marks, and the
    /// database file's path; removes it all afterwards.
    static func withCheckpointer(
        wakeAtPages: Int32, writerCheckpointsAtPages: Int32, _ body: (DatabasePool, WALCheckpointer, String) throws -> Void
    ) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-wal-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pool = try Self.pool(directory)
        let checkpointer = try WALCheckpointer(path: "\(directory)/db.sqlite", wakeAtPages: wakeAtPages, writerCheckpointsAtPages: writerCheckpointsAtPages)
        try checkpointer.attach(to: pool)
        defer { checkpointer.detach(from: pool) }
        try body(pool, checkpointer, "\(directory)/db.sqlite")
    }

    /// Past the mark, the log is copied into the database file by the checkpointer's thread,
    /// while the writer goes on committing; below it nothing is copied (SQLite's own automatic
    /// checkpoint, which the hook replaces, would have run at 1,000 pages).
    @Test func theLogIsCopiedBesideTheWriterOncePastTheMark() throws {
        try Self.withCheckpointer(wakeAtPages: 1_500, writerCheckpointsAtPages: 100_000) { pool, checkpointer, file in
            let before = Self.size(file)
            try Self.fill(pool, rows: 0..<300)  // about 600 pages of log: a leaf and the root per commit
            #expect(checkpointer.checkpointsCompleted == 0)
            #expect(Self.size(file) == before)
            try Self.fill(pool, rows: 300..<1_600)
            // The first checkpoint may have started at the mark (about 750 rows); a later one,
            // asked for as the log grew, copies the rest.
            #expect(Readiness.wait(timeout: 30) { Self.size(file) > before + 1_000 * 4_096 })
            #expect(checkpointer.checkpointsCompleted >= 1)
            #expect(try pool.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM t") } == 1_600)
        }
    }

    /// While commits keep coming, a checkpoint rarely reaches the log's end, so the count stays past
    /// the mark: the thread is asked again only after another quarter of the mark, or once the log
    /// started over (a failed or busy checkpoint clears the last ask to 0, so the next commit asks).
    @Test func theThreadIsAskedAgainOnlyAfterAnotherQuarterOfTheMark() {
        let mark: Int32 = 8192
        #expect(WALCheckpointer.asksAgain(pages: 8192, lastAsked: 0, mark: mark))
        #expect(!WALCheckpointer.asksAgain(pages: 8193, lastAsked: 8192, mark: mark))
        #expect(!WALCheckpointer.asksAgain(pages: 8192 + 2047, lastAsked: 8192, mark: mark))
        #expect(WALCheckpointer.asksAgain(pages: 8192 + 2048, lastAsked: 8192, mark: mark))
        // The log started over and filled past the mark again.
        #expect(WALCheckpointer.asksAgain(pages: 8200, lastAsked: 12_000, mark: mark))
    }

    /// Far behind (here: a thread that never gets the chance), the writer checkpoints itself.
    @Test func theWriterCopiesWhenTheThreadFallsFarBehind() throws {
        try Self.withCheckpointer(wakeAtPages: 100_000, writerCheckpointsAtPages: 500) { pool, checkpointer, file in
            let before = Self.size(file)
            try Self.fill(pool, rows: 0..<400)
            #expect(Self.size(file) > before + 200 * 4_096)
            #expect(checkpointer.checkpointsCompleted == 0)
        }
    }

    /// Each store's checkpointer thread ends with the store (the thread holds its checkpointer
    /// until it returns, so the checkpointer going away shows the thread ended).
    @Test func theThreadEndsWithItsStore() throws {
        var store: TempStore? = try TempStore()
        weak let checkpointer = store?.store.checkpointer
        #expect(checkpointer != nil)
        store = nil
        #expect(Readiness.wait(timeout: 10) { checkpointer == nil })
    }
}
