import Foundation
import GRDB
import KVGossipTestSupport
import Testing
@testable import KVGossipStore

/// The log kept at a reserved length (`WALReserve`): commits rewrite the zeros in place, and a copy
/// of the files taken mid-run, as a crash would leave them, opens with every commit.
@Suite struct WALReserveTests {
    @Test func commitsRewriteTheReserveInPlaceAndACrashCopyKeepsEveryCommit() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-walreserve-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pool = try WALCheckpointerTests.pool(directory)
        // No checkpoint meanwhile: every commit stays in the log, which recovery must read back.
        try pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA wal_autocheckpoint = 0") }
        try WALCheckpointerTests.fill(pool, rows: 0..<50)
        let log = "\(directory)/db.sqlite-wal"
        let before = WALCheckpointerTests.size(log)
        let reserve = 8 << 20
        #expect(before > 0 && before < reserve)

        #expect(try WALReserve.ensure(pool, bytes: reserve) == reserve - before)
        #expect(WALCheckpointerTests.size(log) == reserve)
        #expect(try WALReserve.ensure(pool, bytes: reserve) == 0, "a log already that long is left alone")

        // About 250 pages of 4 KB: within the reserve, so the file does not grow.
        try WALCheckpointerTests.fill(pool, rows: 50..<150)
        #expect(WALCheckpointerTests.size(log) == reserve)

        // The files as a crash would leave them (no checkpoint, no index): recovery reads the frames
        // and stops at the zeros after them.
        let copy = directory + "/copy"
        try Self.expectCopy(of: directory, in: copy, rows: 150)

        // The usual life of a log: a checkpoint from another connection copies it all, the writer
        // starts it over from the top inside the reserved file, and commits rewrite it in place.
        let checkpointer = try DatabaseQueue(path: "\(directory)/db.sqlite")
        try checkpointer.writeWithoutTransaction { try $0.execute(sql: "PRAGMA wal_checkpoint(PASSIVE)") }
        try WALCheckpointerTests.fill(pool, rows: 150..<250)
        #expect(WALCheckpointerTests.size(log) == reserve)
        try Self.expectCopy(of: directory, in: directory + "/copy2", rows: 250)
        withExtendedLifetime(checkpointer) {}
    }

    /// Copies the database and its log (not the index) into `copy`, as a crash would leave them,
    /// and opens the copy.
    static func expectCopy(of directory: String, in copy: String, rows: Int) throws {
        try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: true)
        for name in ["db.sqlite", "db.sqlite-wal"] {
            try FileManager.default.copyItem(atPath: "\(directory)/\(name)", toPath: "\(copy)/\(name)")
        }
        let reopened = try DatabaseQueue(path: "\(copy)/db.sqlite")
        #expect(try reopened.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM t") } == rows)
        #expect(try reopened.read { try String.fetchOne($0, sql: "PRAGMA integrity_check") } == "ok")
    }

    /// The agent's store reserves its log at open; a store opened without a reserve does not.
    @Test func theAgentsStoreReservesItsLog() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-walreserve-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let reserved = try Store(directory: directory + "/a", root: StoreFixture.root.publicKey, logReserveBytes: 1 << 20)
        #expect(WALCheckpointerTests.size(Store.path(directory + "/a") + "-wal") == 1 << 20)
        let plain = try Store(directory: directory + "/b", root: StoreFixture.root.publicKey)
        #expect(WALCheckpointerTests.size(Store.path(directory + "/b") + "-wal") < 1 << 20)
        withExtendedLifetime((reserved, plain)) {}
    }

    /// On a filesystem with little room, the agent's store opens and commits without its reserve,
    /// and leaves the room to others: a reserve that would take more than half of what is free is
    /// not made, and one that fails midway is given back (Docs/operations.md §Backup and restore).
    /// Before, it wrote zeros until the disk was full, and the store could then not commit at all.
    /// 8 MiB is less than the reserve; 48 MiB would hold it, with less than half left.
    @Test(arguments: ["8m", "48m"]) func aReserveThatWouldFillTheDiskIsNotMade(size: String) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-walreserve-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try NetnsLab.sh("mount -t tmpfs -o size=\(size) kvg-walreserve '\(directory)'")
        defer { _ = try? NetnsLab.sh("umount '\(directory)'") }
        var fs = statvfs()
        func free() -> Int { statvfs(directory, &fs) == 0 ? Int(fs.f_bavail) * Int(fs.f_frsize) : 0 }
        let before = free()
        let store = try Store(directory: directory, root: StoreFixture.root.publicKey, logReserveBytes: Store.agentLogReserveBytes)
        #expect(WALCheckpointerTests.size(Store.path(directory) + "-wal") < 1 << 20, "the reserve was written")
        for i in 0..<20 { #expect(try store.apply(StoreFixture.record("/k/\(i)", "v\(i)")) == .accepted) }
        #expect(free() > before / 2, "the store took \((before - free()) >> 20) of \(before >> 20) MiB")
        try store.close()
    }
}
