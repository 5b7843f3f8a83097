import Foundation
import GRDB
import KVGossipCore

extension Store {
    /// Records whose key matches any of `patterns`, in key order, each once, all read in ONE read
    /// transaction: every commit (a write, a sync batch, a revocation's cascade) is in the answer
    /// entirely or not at all. Each scan is narrowed to its pattern's literal prefix, and rows whose
    /// key does not match are skipped without being decoded.
    ///
    /// Bounded: at most `rowLimit` rows are examined and `recordLimit` records taken (`take` may
    /// refuse one too, e.g. for size); past either, `complete` is false and the records are a part.
    public func records(
        matchingAny patterns: [Pattern], rowLimit: Int = .max, recordLimit: Int = .max,
        take: (KVGossipCore.Record) -> Bool = { _ in true }
    ) throws -> (records: [KVGossipCore.Record], complete: Bool) {
        try db.read { db in
            var found: [String: KVGossipCore.Record] = [:]
            var examined = 0
            for pattern in patterns {
                let prefix = pattern.literalPrefix.isEmpty ? nil : try? Key(pattern.literalPrefix)
                let (lower, upper) = prefix.map { ($0.path, $0.path + "0") } ?? ("", "0")
                let rows = try Row.fetchCursor(
                    db.cachedStatement(sql: "SELECT key, encoded FROM records WHERE key >= ? AND key < ? ORDER BY key"),
                    arguments: [lower, upper])
                while let row = try rows.next() {
                    examined += 1
                    guard examined <= rowLimit else { return (Self.sorted(found), false) }
                    let path: String = row[0]
                    // "/a-b" sorts between "/a" and "/a/…" but is not below "/a"; the pattern refuses it.
                    guard found[path] == nil, let key = try? Key(path), pattern.matches(key) else { continue }
                    let record = try row.withUnsafeData(atIndex: 1) { data in
                        try KVGossipCore.Record(decoding: [UInt8](data ?? Data()), limits: Limits(maxValueBytes: Int(UInt32.max)))
                    }
                    guard found.count < recordLimit, take(record) else { return (Self.sorted(found), false) }
                    found[path] = record
                }
            }
            return (Self.sorted(found), true)
        }
    }

    private static func sorted(_ found: [String: KVGossipCore.Record]) -> [KVGossipCore.Record] {
        found.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }.map { found[$0]! }
    }
}
