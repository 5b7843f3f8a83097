import Foundation
import GRDB

/// The schema's version is the list of migration steps a store has applied (GRDB records each in
/// `grdb_migrations`). A store that records a step this release does not know was written by a
/// newer release: opening it would run old code on tables it does not understand, so it is
/// refused instead (Docs/operations.md §Upgrades and downgrades).
extension StoreSchema {
    /// The steps recorded in the store that this release does not know, sorted; empty for a new
    /// store or one this release (or an older one) wrote.
    static func unknownSteps(_ db: Database) throws -> [String] {
        try migrator.appliedIdentifiers(db).subtracting(migrator.migrations).sorted()
    }

    /// Why this release must not use the store in `directory` open on `db`, or nil.
    static func refusal(_ db: Database, directory: String) throws -> StoreError? {
        let unknown = try unknownSteps(db)
        return unknown.isEmpty ? nil : .newerSchema(directory: directory, unknownSteps: unknown)
    }
}

extension Store {
    /// Why this release must not open the store in `directory`, or nil when it may (also when
    /// there is no store yet). Reads only; safe beside a running agent.
    public static func schemaProblem(directory: String) throws -> StoreError? {
        let path = Store.path(directory)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        var config = Configuration()
        config.readonly = true
        config.busyMode = .timeout(10)
        return try DatabaseQueue(path: path, configuration: config).read { try StoreSchema.refusal($0, directory: directory) }
    }
}
