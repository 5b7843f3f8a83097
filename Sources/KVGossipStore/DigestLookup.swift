import Foundation
import GRDB
import GRDBSQLite
import KVGossipCore
import Synchronization

/// The digest of each key's current record, read on a read-only connection of its own through
/// SQLite's C API (`Store.digests(of:)`).
///
/// Why: a receiver answers a pushed record it already holds `duplicate` from this lookup, before
/// any check or transaction (Docs/architecture.md §Durability), so every pushed record pays for it
/// first. Through GRDB's pool the lookup cost more than its query: a reader taken from the pool, a
/// dispatch onto that reader's queue, its read-only pragma, BEGIN and COMMIT, key paths built at
/// run time (profiled on a receiver: 59 samples in the lookup, 23 of them in the query itself).
/// Here it is one prepared statement on one connection, under a lock; one SELECT reads a
/// consistent snapshot by itself, and a lookup of several keys needs none across them (each
/// answer is about its own key).
final class DigestLookup: Sendable {
    private let path: String
    /// Opened at the first lookup; closed with the store, after which a lookup throws instead of
    /// opening the file again.
    private let connection = Mutex<State>(.unopened)

    private enum State {
        case unopened
        case open(Connection)
        case closed
    }

    init(path: String) {
        self.path = path
    }

    func digests(of keys: [Key]) throws -> [Hash256?] {
        try connection.withLock { state in
            let open: Connection
            switch state {
            case .open(let connection): open = connection
            case .unopened:
                open = try Connection(path: path)
                state = .open(open)
            case .closed: throw StoreError.closed
            }
            return try keys.map { try open.digest(of: $0) }
        }
    }

    /// Closes the connection (waiting for a lookup under way).
    func close() {
        connection.withLock { $0 = .closed }
    }

    private final class Connection {
        static let sql = "SELECT digest FROM records WHERE key = ?"
        let db: OpaquePointer
        let statement: OpaquePointer

        init(path: String) throws {
            var db: OpaquePointer?
            let opened = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nil)
            guard opened == SQLITE_OK, let db else {
                let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open \(path)"
                sqlite3_close_v2(db)
                throw DatabaseError(resultCode: ResultCode(rawValue: opened), message: message)
            }
            // As the pool's connections wait: a reader of a WAL database meets a lock only while
            // the log is recovered or started over.
            sqlite3_busy_timeout(db, 10_000)
            var statement: OpaquePointer?
            let prepared = sqlite3_prepare_v2(db, Self.sql, -1, &statement, nil)
            guard prepared == SQLITE_OK, let statement else {
                let message = String(cString: sqlite3_errmsg(db))
                sqlite3_close_v2(db)
                throw DatabaseError(resultCode: ResultCode(rawValue: prepared), message: message, sql: Self.sql)
            }
            self.db = db
            self.statement = statement
        }

        deinit {
            sqlite3_finalize(statement)
            sqlite3_close_v2(db)
        }

        func digest(of key: Key) throws -> Hash256? {
            let digest = try DirectStatement(handle: statement, sql: Self.sql).firstRow({ $0.text(key.path) }) { $0.hash(0) }
            return digest ?? nil
        }
    }
}
