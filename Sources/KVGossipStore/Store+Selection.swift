import GRDB
import KVGossipCore

extension Store {
    /// Records whose key matches any of `patterns`, in key order, each once, all read in ONE read
    /// transaction: every commit (a write, a sync batch, a revocation's cascade) is in the answer
    /// entirely or not at all. Each scan is narrowed to its pattern's literal prefix.
    public func records(matchingAny patterns: [Pattern]) throws -> [KVGossipCore.Record] {
        try db.read { db in
            var found: [Key: KVGossipCore.Record] = [:]
            for pattern in patterns {
                let prefix = pattern.literalPrefix.isEmpty ? nil : try? Key(pattern.literalPrefix)
                for record in try fetchRecords(db, under: prefix) where pattern.matches(record.key) { found[record.key] = record }
            }
            return found.keys.sorted().map { found[$0]! }
        }
    }
}
