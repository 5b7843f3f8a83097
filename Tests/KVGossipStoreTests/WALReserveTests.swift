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
        try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(directory)/db.sqlite", toPath: "\(copy)/db.sqlite")
        try FileManager.default.copyItem(atPath: log, toPath: "\(copy)/db.sqlite-wal")
        let reopened = try DatabaseQueue(path: "\(copy)/db.sqlite")
        #expect(try reopened.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM t") } == 150)
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
}
