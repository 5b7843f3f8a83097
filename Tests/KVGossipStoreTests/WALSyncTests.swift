import Foundation
import Synchronization
import Testing
@testable import KVGossipStore

/// The sync of a peer's records after they are published (Docs/architecture.md §Durability).
@Suite struct WALSyncTests {
    /// A log file in a fresh directory, removed when the test ends.
    final class Log {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-walsync-\(UUID().uuidString)").path
        var database: String { directory + "/db" }

        init() throws {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            guard FileManager.default.createFile(atPath: database + "-wal", contents: Data([1, 2, 3])) else { throw CocoaError(.fileWriteUnknown) }
        }

        deinit { try? FileManager.default.removeItem(atPath: directory) }
    }

    @Test func aSyncIsNeededOnlyForCommitsNotYetCovered() throws {
        let log = try Log()
        let calls = Atomic<Int>(0)
        let wal = WALSync(databasePath: log.database) { fd in
            calls.add(1, ordering: .relaxed)
            return fdatasync(fd)
        }
        try wal.syncIfBehind()
        #expect(calls.load(ordering: .relaxed) == 0)
        wal.willCommit()
        wal.willCommit()
        try wal.syncIfBehind()
        #expect(calls.load(ordering: .relaxed) == 1)
        // Both commits were counted before that sync began: it covered them.
        try wal.syncIfBehind()
        #expect(calls.load(ordering: .relaxed) == 1)
        wal.willCommit()
        try wal.sync()
        try wal.syncIfBehind()
        #expect(calls.load(ordering: .relaxed) == 2)
    }

    /// After one failed sync nothing may be acknowledged again: the kernel may have dropped the
    /// log's pages, and a later sync could succeed without them.
    @Test func oneFailedSyncRefusesEverythingAfter() throws {
        let log = try Log()
        let fail = Atomic<Bool>(true)
        let wal = WALSync(databasePath: log.database) { fd in
            if fail.load(ordering: .relaxed) {
                errno = EIO
                return -1
            }
            return fdatasync(fd)
        }
        wal.willCommit()
        #expect(throws: WALSyncError.self) { try wal.sync() }
        fail.store(false, ordering: .relaxed)
        #expect(throws: WALSyncError.self) { try wal.sync() }
        #expect(throws: WALSyncError.self) { try wal.syncIfBehind() }
        #expect(throws: WALSyncError.self) { try wal.refuseAfterFailure() }
        #expect(wal.completed == 0)
    }

    /// A log SQLite removed (at its last close, after checkpointing it into the database) needs no sync.
    @Test func noLogMeansNothingToSync() throws {
        let log = try Log()
        try FileManager.default.removeItem(atPath: log.database + "-wal")
        let wal = WALSync(databasePath: log.database) { _ in
            errno = EIO
            return -1
        }
        wal.willCommit()
        try wal.sync()
        try wal.refuseAfterFailure()
    }
}
