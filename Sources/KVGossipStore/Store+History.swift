import Foundation
import GRDB
import KVGossipCore

/// One version of a key as this host stored it: the current record or an earlier one.
public struct StoredVersion: Sendable, Equatable {
    public let record: KVGossipCore.Record
    /// The key's current record (the one that takes part in sync); false for history.
    public let isCurrent: Bool
}

/// What the history table holds now.
public struct HistoryUsage: Sendable, Equatable {
    public let versions: Int
    public let bytes: Int
}

extension PendingTransaction {
    /// Copies the key's current record (the row `row`) into history before it is replaced or
    /// unset, inside the same transaction (no commit of its own), then trims the key to its bound.
    /// Returns the count of the key's earlier versions for its row (`StoredRow.historyVersions`).
    mutating func keepCurrentInHistory(_ key: Key, row: StoredRow, db: Database) throws -> Int? {
        guard !history.isOff, HistoryRule.admits(bytes: row.size, bounds: history) else { return row.historyVersions }
        let inserted: Int
        if let encoded = row.encoded {
            // The lookup brought the encoding (a replacement): an INSERT of bound values costs
            // about a fifth less than copying the row with INSERT … SELECT.
            inserted = try DirectStatement(db, "INSERT OR IGNORE INTO history (key, ts, kind, digest, size, encoded) VALUES (?, ?, ?, ?, ?, ?)").run {
                $0.text(key.path)
                $0.int(Int64(bitPattern: row.version.timestamp.raw))
                $0.int(Int64(row.version.kind.rawValue))
                $0.blob(row.version.digest)
                $0.int(encoded.count)
                $0.blob(encoded)
            }
        } else {
            inserted = try DirectStatement(db, """
                INSERT OR IGNORE INTO history (key, ts, kind, digest, size, encoded)
                SELECT key, ts, kind, digest, length(encoded), encoded FROM records WHERE rowid = ? AND key = ?
                """).run {
                $0.int(row.rowid)
                $0.text(key.path)
            }
        }
        return try noteInserted(key, size: row.size, inserted: inserted, versionsBefore: row.historyVersions, db: db)
    }

    /// Keeps a valid record that arrived already beaten by the current one (the row `current`):
    /// a version this host saw.
    mutating func keepBeatenInHistory(_ record: KVGossipCore.Record, current: StoredRow, db: Database) throws {
        guard !history.isOff else { return }
        let encoded = record.encoded
        guard HistoryRule.admits(bytes: encoded.count, bounds: history) else { return }
        let inserted = try DirectStatement(db, "INSERT OR IGNORE INTO history (key, ts, kind, digest, size, encoded) VALUES (?, ?, ?, ?, ?, ?)").run {
            $0.text(record.key.path)
            $0.int(Int64(bitPattern: record.timestamp.raw))
            $0.int(Int64(record.kind.rawValue))
            $0.blob(record.digest)
            $0.int(encoded.count)
            $0.blob(encoded)
        }
        let versions = try noteInserted(record.key, size: encoded.count, inserted: inserted, versionsBefore: current.historyVersions, db: db)
        guard versions != current.historyVersions else { return }
        let changed = try DirectStatement(db, "UPDATE records SET history_versions = ? WHERE rowid = ? AND key = ?").run {
            $0.optionalInt(versions)
            $0.int(current.rowid)
            $0.text(record.key.path)
        }
        guard changed == 1 else { throw StoreCorruption("the row of \(record.key) was not where its lookup found it") }
    }

    /// After an insert: counts its bytes and, when the key may now be past its bound (or its
    /// count is not known), lets its lowest versions go. Returns the key's new count.
    private mutating func noteInserted(_ key: Key, size: Int, inserted: Int, versionsBefore: Int?, db: Database) throws -> Int? {
        guard inserted > 0 else { return versionsBefore }
        historyBytesDelta += size
        historyChanged = true
        if let before = versionsBefore, before + 1 <= HistoryRule.versionsKeptPerKey(history) { return before + 1 }
        return try trimKey(key.path, db: db)
    }

    /// Drops the key's lowest versions past its bound: one walk down the key's versions, newest
    /// first, that yields only those past the bound (usually none). Returns how many it keeps.
    @discardableResult
    mutating func trimKey(_ path: String, db: Database) throws -> Int {
        let bound = HistoryRule.versionsKeptPerKey(history)
        var lowest: [(seq: Int64, size: Int)] = []
        try DirectStatement(db, "SELECT seq, size FROM history WHERE key = ? ORDER BY ts DESC, kind DESC, digest DESC LIMIT -1 OFFSET ?").forEachRow({
            $0.text(path)
            $0.int(bound)
        }) { row in
            lowest.append((row.int(0), Int(row.int(1))))
        }
        guard !lowest.isEmpty else {
            // Within the bound: count what is there, so the key's next versions need no walk.
            return try DirectStatement(db, "SELECT COUNT(*) FROM history WHERE key = ?").firstRow({ $0.text(path) }) { Int($0.int(0)) } ?? 0
        }
        let delete = try DirectStatement(db, "DELETE FROM history WHERE seq = ?")
        for version in lowest {
            try delete.run { $0.int(version.seq) }
            historyBytesDelta -= version.size
            historyChanged = true
        }
        return bound
    }

    /// At the transaction's end: the new total, with the oldest arrivals dropped until it fits
    /// the byte budget.
    func settleHistoryBytes(db: Database) throws {
        guard historyChanged else { return }
        var total = try db.historyBytes() + historyBytesDelta
        while total > history.totalBytes {
            let oldest = try Row.fetchAll(db.cachedStatement(sql: "SELECT seq, size FROM history ORDER BY seq LIMIT 256"))
            guard !oldest.isEmpty else {
                total = 0
                break
            }
            let drop = HistoryRule.dropsForBudget(totalBytes: total, oldestFirst: oldest.map { $0[1] as Int }, bounds: history)
            let lastSeq: Int64 = oldest[drop.count - 1][0]
            try db.cachedStatement(sql: "DELETE FROM history WHERE seq <= ?").execute(arguments: [lastSeq])
            total -= drop.freed
        }
        var w = ByteWriter()
        w.u64(UInt64(max(0, total)))
        try db.setMeta(.historyBytes, w.bytes)
    }
}

extension Store {
    /// Brings history within bounds lowered since it was written (at open): each key to its bound,
    /// then the total to the budget.
    func enforceHistoryBounds() throws {
        try commit { db, tx in
            let keys = try String.fetchAll(
                db.cachedStatement(sql: "SELECT key FROM history GROUP BY key HAVING COUNT(*) > ?"),
                arguments: [max(0, historyBounds.versionsPerKey)])
            for path in keys { try tx.trimKey(path, db: db) }
            // Settled by the commit like any change to history.
            if try db.historyBytes() > historyBounds.totalBytes { tx.historyChanged = true }
        }
    }
}

extension Database {
    func historyBytes() throws -> Int {
        guard let bytes = try meta(.historyBytes) else { return 0 }
        var r = ByteReader(bytes)
        return Int((try? r.u64("history bytes")) ?? 0)
    }
}

extension Store {
    /// Versions of `key`, newest first (Docs/contract.md §Ordering): the current record, if any,
    /// and the earlier ones this host kept. After `cursor`, only versions below it.
    public func versions(of key: Key, below cursor: RecordVersion? = nil, limit: Int = .max) throws -> [StoredVersion] {
        try db.read { db in try Store.fetchVersions(db, key: key, below: cursor, limit: limit) }
    }

    static func fetchVersions(_ db: Database, key: Key, below cursor: RecordVersion?, limit: Int) throws -> [StoredVersion] {
        let bound = cursor.map { (Int64(bitPattern: $0.timestamp.raw), Int64($0.kind.rawValue), Data($0.digest.bytes)) }
            ?? (Int64.max, Int64.max, Data(repeating: 0xFF, count: 33))
        let rows = try Row.fetchCursor(
            db.cachedStatement(sql: """
                SELECT encoded, 1, ts, kind, digest FROM records WHERE key = ? AND (ts, kind, digest) < (?, ?, ?)
                UNION ALL
                SELECT encoded, 0, ts, kind, digest FROM history WHERE key = ? AND (ts, kind, digest) < (?, ?, ?)
                ORDER BY 3 DESC, 4 DESC, 5 DESC LIMIT ?
                """),
            arguments: [key.path, bound.0, bound.1, bound.2, key.path, bound.0, bound.1, bound.2, Int64(clamping: limit)])
        var out: [StoredVersion] = []
        while let row = try rows.next() {
            let record = try row.withUnsafeData(atIndex: 0) { data in
                try KVGossipCore.Record(decoding: [UInt8](data ?? Data()), limits: Limits(maxValueBytes: Int(UInt32.max)))
            }
            out.append(StoredVersion(record: record, isCurrent: (row[1] as Int64) == 1))
        }
        return out
    }

    /// Keys with a current record or kept versions, matching `pattern`, in key order after `after`.
    /// At most `rowLimit` keys are examined; `next` is the last one examined when more may follow.
    public func keysWithVersions(matching pattern: Pattern, after: String?, rowLimit: Int) throws -> (keys: [Key], next: String?) {
        let prefix = pattern.literalPrefix.isEmpty ? nil : try? Key(pattern.literalPrefix)
        let (lower, upper) = prefix.map { ($0.path, $0.path + "0") } ?? ("", "0")
        let after = after ?? ""
        return try db.read { db in
            let paths = try String.fetchAll(
                db.cachedStatement(sql: """
                    SELECT key FROM records WHERE key >= ? AND key < ? AND key > ?
                    UNION SELECT key FROM history WHERE key >= ? AND key < ? AND key > ?
                    ORDER BY key LIMIT ?
                    """),
                arguments: [lower, upper, after, lower, upper, after, rowLimit])
            let keys = paths.compactMap { try? Key($0) }.filter(pattern.matches)
            return (keys, paths.count < rowLimit ? nil : paths.last)
        }
    }

    /// How many earlier versions this host keeps now, and their bytes.
    public var historyUsage: HistoryUsage {
        get throws {
            try db.read { db in
                HistoryUsage(
                    versions: try Int.fetchOne(db.cachedStatement(sql: "SELECT COUNT(*) FROM history")) ?? 0,
                    bytes: try db.historyBytes())
            }
        }
    }
}
