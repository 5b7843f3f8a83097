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
}
