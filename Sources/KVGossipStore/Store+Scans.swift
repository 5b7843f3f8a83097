import Foundation
import GRDB
import KVGossipCore

/// Read paths for answers of any size: key-ordered scans that resume after a key (keyset
/// pagination on `records.key`, never OFFSET), counts without decoding, and the probes behind the
/// list of shadowed values. Each call is one read transaction with a bounded number of rows.
extension Store {
    /// What a scan visitor does with one row.
    public enum ScanStep {
        /// The row was handled (taken or skipped): go on.
        case next
        /// Stop before this row; the next scan starts at it.
        case stopBefore
    }

    /// Visits the records at or below `prefix` (every record for nil) in key order, strictly after
    /// `cursor`, examining at most `rowLimit` rows. `visit` gets the key and kind from their columns
    /// and a function that decodes the record, so rows it skips are never decoded.
    ///
    /// - Returns: the key to resume after, or nil when the scan reached the end of the range.
    public func scanRecords(
        under prefix: Key?, after cursor: String?, rowLimit: Int,
        _ visit: (_ key: String, _ kind: KVGossipCore.Record.Kind, _ load: () throws -> KVGossipCore.Record) throws -> ScanStep
    ) throws -> String? {
        try db.read { db in
            var examined = 0
            var resumeAfter = cursor
            func step(_ row: Row) throws -> Bool {
                let key: String = row[0]
                let kind = KVGossipCore.Record.Kind(rawValue: UInt8(row[1] as Int64)) ?? .value
                let load = { () throws -> KVGossipCore.Record in
                    try row.withUnsafeData(atIndex: 2) { data in
                        try KVGossipCore.Record(decoding: [UInt8](data ?? Data()), limits: Limits(maxValueBytes: Int(UInt32.max)))
                    }
                }
                guard try visit(key, kind, load) == .next else { return false }
                resumeAfter = key
                examined += 1
                return examined < rowLimit
            }
            // The prefix itself sorts before everything strictly below it ("/a" < "/a/…"); keys such as
            // "/a-b" that sort between the two are not below it and are never read.
            if let prefix, cursor == nil || cursor!.utf8.lexicographicallyPrecedes(prefix.path.utf8) {
                if let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT key, kind, encoded FROM records WHERE key = ?"), arguments: [prefix.path]) {
                    guard try step(row) else { return resumeAfter }
                } else {
                    resumeAfter = prefix.path
                }
            }
            let (lower, upper) = Store.bounds(below: prefix, after: resumeAfter)
            let rows = try Row.fetchCursor(
                db.cachedStatement(sql: "SELECT key, kind, encoded FROM records WHERE key > ? AND key < ? ORDER BY key LIMIT ?"),
                arguments: [lower, upper, rowLimit - examined])
            while let row = try rows.next() {
                guard try step(row) else { return resumeAfter }
            }
            return nil
        }
    }

    /// The open key range strictly below `prefix` (everything for nil) and strictly after `cursor`.
    /// '/' is 0x2F and '0' is 0x30, so the keys below "/a" are exactly those in ("/a/", "/a0"); every
    /// key starts with '/', so all keys lie in ("", "0").
    static func bounds(below prefix: Key?, after cursor: String?) -> (lower: String, upper: String) {
        guard let prefix else { return (cursor ?? "", "0") }
        let floor = prefix.path + "/"
        let lower = cursor.map { $0.utf8.lexicographicallyPrecedes(floor.utf8) ? floor : $0 } ?? floor
        return (lower, prefix.path + "0")
    }

    /// Counts for `status`, from one snapshot and without decoding anything. Everything counted
    /// here is covered by the tree hash, so counts taken at one tree hash hold until it moves.
    public struct Counts: Sendable, Equatable {
        /// The tree hash of the snapshot counted.
        public var treeHash: Hash256
        /// Keys holding a value (tombstones excluded).
        public var values: Int
        /// Every stored record, tombstones included.
        public var records: Int
        public var revocations: Int
    }

    /// All records and all revocations are the entry counts at the roots of the two Merkle summaries
    /// (one row each); tombstones come from their own index (`records_tombstones`). Nothing grows
    /// with the number of values.
    public func counts() throws -> Counts {
        try db.read { db in
            // The literal 1 (Record.Kind.tombstone) is what lets SQLite use the partial index.
            let tombstones = try Int.fetchOne(
                db.cachedStatement(sql: "SELECT COUNT(*) FROM records INDEXED BY records_tombstones WHERE kind = 1")) ?? 0
            let records = try Store.summaryCount(db, .records)
            return Counts(
                treeHash: try Store.treeHash(db), values: records - tombstones, records: records,
                revocations: try Store.summaryCount(db, .revocations))
        }
    }

    /// Entries in one Merkle summary: its root's count, or, while the root is still a leaf (no
    /// stored node), its few entries counted.
    static func summaryCount(_ db: Database, _ space: SQLiteMerkleBackend.Space) throws -> Int {
        if let count = try Int.fetchOne(
            db.cachedStatement(sql: "SELECT count FROM merkle_nodes WHERE space = ? AND prefix = ?"), arguments: [space.rawValue, Data()])
        {
            return count
        }
        let count = switch space {
        case .records: "SELECT COUNT(*) FROM records"
        case .revocations: "SELECT COUNT(*) FROM merkle_entries WHERE space = 1"
        }
        return try Int.fetchOne(db.cachedStatement(sql: count)) ?? 0
    }

    /// Stored grants that are not revoked, counted without decoding them.
    public func heldGrantCount() throws -> Int {
        let ids = try db.read { db in try Data.fetchAll(db.cachedStatement(sql: "SELECT id FROM grants")) }
        return ids.count { Hash256(bytes: [UInt8]($0)).map(isRevoked) != true }
    }

    /// Of `keys`, those that hold a value while some key strictly below them holds one too.
    public func valuesWithValuesBelow(among keys: [Key]) throws -> Set<String> {
        try db.read { db in
            var out = Set<String>()
            for key in keys where try Store.hasValue(db, key.path) && Store.hasValue(db, below: key) {
                out.insert(key.path)
            }
            return out
        }
    }

    /// Scans at most `rowLimit` keys after `cursor` and returns those that hold a value while some
    /// key strictly below them holds one too; `next` is nil when the scan reached the end.
    ///
    /// One statement per call: SQLite probes below each value itself. A probe per key from Swift
    /// cost GRDB's per-execution bookkeeping every time, and at a million keys kept a core busy for
    /// about 15 s after each start (Docs/filesystem.md §Memory).
    public func valuesWithValuesBelow(after cursor: String?, rowLimit: Int) throws -> (keys: [String], next: String?) {
        let value = Int64(KVGossipCore.Record.Kind.value.rawValue)
        return try db.read { db in
            // The same bounds as `hasValue(_:below:)`: strictly after "key/", before "key0".
            let rows = try Row.fetchAll(
                db.cachedStatement(sql: """
                    WITH page AS (SELECT key, kind FROM records WHERE key > ? ORDER BY key LIMIT ?)
                    SELECT key, kind = ? AND EXISTS (
                        SELECT 1 FROM records below WHERE below.key > page.key || '/' AND below.key < page.key || '0' AND below.kind = ?)
                    FROM page ORDER BY key
                    """),
                arguments: [cursor ?? "", rowLimit, value, value])
            let out: [String] = rows.compactMap { row in (row[1] as Bool) ? row[0] : nil }
            return (out, rows.count < rowLimit ? nil : rows.last?[0])
        }
    }

    static func hasValue(_ db: Database, _ path: String) throws -> Bool {
        try Int64.fetchOne(db.cachedStatement(sql: "SELECT kind FROM records WHERE key = ?"), arguments: [path])
            == Int64(KVGossipCore.Record.Kind.value.rawValue)
    }

    static func hasValue(_ db: Database, below key: Key) throws -> Bool {
        try Bool.fetchOne(
            db.cachedStatement(sql: "SELECT 1 FROM records WHERE key > ? AND key < ? AND kind = ? LIMIT 1"),
            arguments: [key.path + "/", key.path + "0", Int64(KVGossipCore.Record.Kind.value.rawValue)]) ?? false
    }
}

extension Store {
    /// Gives back what a read of the whole store leaves pinned: the idle reader connections close
    /// (each keeps up to `cache_size` of pages and maps up to `mmap_size` of the file, all of it
    /// counted in the agent's resident size after a full scan) and the writer drops its unused
    /// cached pages. Connections reopen on the next read. Reads in progress finish first; nothing
    /// waits for this.
    public func releaseReadMemory() {
        db.releaseMemoryEventually()
    }
}
