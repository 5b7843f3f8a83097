import CWALFrames
import Foundation
import GRDB
import Testing
@testable import KVGossipStore

/// The store's VFS writes a commit's log frames in one call (Docs/architecture.md §Durability):
/// SQLite writes each frame as two, its header and its page.
@Suite struct WALFramesTests {
    /// Write calls this thread has made (`syscw` of /proc/thread-self/io): SQLite writes on the
    /// thread that commits, and a count of this thread's own is not disturbed by other tests.
    static func writeCalls() -> Int {
        let text = (try? String(contentsOfFile: "/proc/thread-self/io", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").first { $0.hasPrefix("syscw:") }.flatMap { Int($0.dropFirst(6).trimmingCharacters(in: .whitespaces)) } ?? -1
    }

    @Test func aCommitWritesItsFramesInOneCallAndEveryCommitReadsBack() throws {
        #expect(kvg_wal_frames_register() == 0)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-walframes-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/db.sqlite"
        let framesBefore = kvg_wal_frames_frames()
        var calls: [Int] = []
        do {
            let queue = try DatabaseQueue(path: path)
            try queue.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA journal_mode = WAL")
                try db.execute(sql: "PRAGMA synchronous = NORMAL")
                try db.execute(sql: "CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)")
                try db.execute(sql: "CREATE INDEX t_v ON t (v)")
                for i in 0..<20 {
                    let before = Self.writeCalls()
                    try db.inTransaction {
                        // Three rows of 2 KB, the table and its index: several pages per commit.
                        for j in 0..<3 {
                            try db.execute(sql: "INSERT INTO t (k, v) VALUES (?, ?)", arguments: [i * 3 + j, Data(repeating: UInt8(i), count: 2048) + Data([UInt8(j)])])
                        }
                        return .commit
                    }
                    calls.append(Self.writeCalls() - before)
                }
            }
        }
        #expect(kvg_wal_frames_frames() - framesBefore >= 20 * 3, "fewer frames than commits × 3: the test commits too little to show anything")
        // The first commit may write the log's header too.
        #expect(calls.dropFirst().allSatisfy { $0 == 1 }, "write calls per commit: \(calls)")
        let reopened = try DatabaseQueue(path: path)
        let rows = try reopened.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM t WHERE length(v) = 2049") }
        #expect(rows == 60)
    }

    /// A fresh directory for one test's database, with the VFS registered.
    static func directory() throws -> String {
        #expect(kvg_wal_frames_register() == 0)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-walframes-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    /// A database at `path` in WAL mode, committing at `synchronous = NORMAL` with no automatic
    /// checkpoint, holding an empty table `t (k, v)`.
    static func table(at path: String, cachePages: Int? = nil) throws -> DatabaseQueue {
        let writer = try DatabaseQueue(path: path)
        try writer.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 0")
            if let cachePages { try db.execute(sql: "PRAGMA cache_size = \(cachePages)") }
            try db.execute(sql: "CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)")
        }
        return writer
    }

    /// What a process killed right after a commit leaves: the database and its log as the file
    /// system has them (not the log's index, which SQLite rebuilds), opened as a copy.
    static func rowsAfterAKill(_ path: String, _ scratch: String, where condition: String = "1") throws -> Int {
        try? FileManager.default.removeItem(atPath: scratch)
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        for suffix in ["", "-wal"] {
            try FileManager.default.copyItem(atPath: path + suffix, toPath: scratch + "/db.sqlite" + suffix)
        }
        let copy = try DatabaseQueue(path: scratch + "/db.sqlite")
        return try copy.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM t WHERE \(condition)") } ?? -1
    }

    /// Commits at `synchronous = NORMAL` (a peer's records) of 1 to 70 pages each, across the
    /// 31-frame size of one held write: right after each commit, before the writer touches the log
    /// again, another connection reads every row, and the files as a kill would leave them hold it.
    @Test func everyCommitIsInTheFileWhenItReturnsWhateverItsSize() throws {
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/db.sqlite"
        let writer = try Self.table(at: path)
        let reader = try DatabaseQueue(path: path)
        var total = 0
        for pages in 1...70 {
            // A row of 3.5 KB fills a 4 KB page of its own.
            try writer.write { db in
                for j in 0..<pages {
                    try db.execute(sql: "INSERT INTO t (k, v) VALUES (?, ?)", arguments: [total + j, Data(repeating: UInt8(pages), count: 3500)])
                }
            }
            total += pages
            let read = try reader.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM t WHERE length(v) = 3500") }
            #expect(read == total, "after a commit of \(pages) pages another connection read \(read ?? -1) of \(total) rows")
            if pages % 5 == 1 || (29...35).contains(pages) || (60...66).contains(pages) {
                let kept = try Self.rowsAfterAKill(path, directory + "/copy", where: "length(v) = 3500")
                #expect(kept == total, "a kill after a commit of \(pages) pages would keep \(kept) of \(total) rows")
            }
        }
    }

    /// A transaction larger than its connection's page cache spills frames to the log before it
    /// commits, writes some of them again in place, and at its commit SQLite rewrites the headers
    /// from the first frame written again on (new checksums). The last of those is the commit
    /// frame's header, with no page after it: it must reach the file before the commit returns.
    @Test func aSpilledTransactionIsWholeInTheFileWhenItCommits() throws {
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/db.sqlite"
        let writer = try Self.table(at: path, cachePages: 10)
        try writer.write { db in
            for k in 0..<300 {
                try db.execute(sql: "INSERT INTO t (k, v) VALUES (?, ?)", arguments: [k, Data(repeating: 1, count: 3500)])
            }
            // Pages already spilled to the log, changed again.
            for k in 0..<300 where k % 3 == 0 {
                try db.execute(sql: "UPDATE t SET v = ? WHERE k = ?", arguments: [Data(repeating: 2, count: 3500), k])
            }
        }
        #expect(try Self.rowsAfterAKill(path, directory + "/copy") == 300)
        #expect(try Self.rowsAfterAKill(path, directory + "/copy", where: "v = x'\(String(repeating: "02", count: 3500))'") == 100)
    }
}
