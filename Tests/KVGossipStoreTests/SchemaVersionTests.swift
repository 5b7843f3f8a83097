import Foundation
import GRDB
import KVGossipCore
import Testing
@testable import KVGossipStore

/// A store records the schema steps it has applied; a store that records a step this release does
/// not know was written by a newer release and is refused, never migrated or read
/// (Docs/operations.md §Upgrades and downgrades).
@Suite struct SchemaVersionTests {
    /// What a newer release leaves behind: one more applied step.
    func writtenByANewerRelease(_ t: TempStore) throws {
        try t.store.db.write { try $0.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('from-a-newer-release')") }
    }

    @Test func aStoreThisReleaseWroteOpensAgain() throws {
        let t = try TempStore()
        _ = try t.store.apply(StoreFixture.record("/a", "1"))
        #expect(try Store.schemaProblem(directory: t.directory) == nil)
        try t.reopen()
        #expect(try t.store.record(Key("/a"))?.value == Array("1".utf8))
    }

    @Test func noStoreYetIsNoProblem() throws {
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-none-\(UUID().uuidString)").path
        #expect(try Store.schemaProblem(directory: empty) == nil)
    }

    @Test func aStoreANewerReleaseWroteIsRefusedByNameAndLeftAlone() throws {
        let t = try TempStore()
        _ = try t.store.apply(StoreFixture.record("/a", "1"))
        try writtenByANewerRelease(t)

        let problem = try #require(try Store.schemaProblem(directory: t.directory))
        #expect(problem.description.contains("newer kvgossip") && problem.description.contains("from-a-newer-release"))
        #expect {
            try Store(directory: t.directory, root: StoreFixture.root.publicKey)
        } throws: { error in
            guard case StoreError.newerSchema(_, let steps) = error else { return false }
            return steps == ["from-a-newer-release"]
        }
        #expect(throws: StoreError.self) { try Store(readingDirectory: t.directory) }
        // Refused before anything was written: the record and the unknown step are both still there.
        let steps = try t.store.db.read { try String.fetchAll($0, sql: "SELECT identifier FROM grdb_migrations") }
        #expect(steps.contains("from-a-newer-release"))
        #expect(try t.store.record(Key("/a"))?.value == Array("1".utf8))
    }
}
