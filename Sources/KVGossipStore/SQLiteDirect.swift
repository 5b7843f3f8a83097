import Foundation
import GRDB
import GRDBSQLite
import KVGossipCore

/// Binds and steps a prepared statement through SQLite's C API, for the statements a batch runs
/// once or more per record. GRDB's `execute(arguments:)` boxes every argument in a
/// `DatabaseValue` and copies blobs into `Data`; at a few statements per record and a thousand
/// records per batch that was a large part of the commit. Statements come from GRDB's cache (so
/// GRDB still owns and finalizes them) and are only used inside an open transaction (the reads of
/// `meta` in read transactions too) with no transaction observers, so nothing GRDB tracks per
/// statement is skipped. `DigestLookup` steps its own statement, outside GRDB, the same way.
struct DirectStatement {
    private let handle: OpaquePointer
    private let sql: String
    /// What keeps the statement alive while it is used: GRDB's statement, or nil for one the
    /// caller owns.
    private let owner: Statement?

    init(_ db: Database, _ sql: String) throws {
        let statement = try db.cachedStatement(sql: sql)
        handle = statement.sqliteStatement
        self.sql = sql
        owner = statement
    }

    /// A statement the caller prepared and keeps alive (and finalizes) itself.
    init(handle: OpaquePointer, sql: String) {
        self.handle = handle
        self.sql = sql
        owner = nil
    }

    /// Runs the statement to completion with the given bindings; returns the rows it changed.
    @discardableResult
    func run(_ bind: (inout Binder) -> Void) throws -> Int {
        try start(bind)
        defer { finish() }
        while true {
            let code = sqlite3_step(handle)
            if code == SQLITE_DONE { return Int(sqlite3_changes(sqlite3_db_handle(handle))) }
            if code != SQLITE_ROW { throw error(code) }
        }
    }

    /// Calls `row` for each result row, with the statement positioned on it.
    func forEachRow(_ bind: (inout Binder) -> Void, _ row: (Columns) throws -> Void) throws {
        try start(bind)
        defer { finish() }
        while true {
            let code = sqlite3_step(handle)
            if code == SQLITE_DONE { return }
            guard code == SQLITE_ROW else { throw error(code) }
            try row(Columns(handle: handle))
        }
    }

    /// The first result row, read by `row`, or nil when there is none.
    func firstRow<T>(_ bind: (inout Binder) -> Void, _ row: (Columns) throws -> T) throws -> T? {
        try start(bind)
        defer { finish() }
        let code = sqlite3_step(handle)
        if code == SQLITE_DONE { return nil }
        guard code == SQLITE_ROW else { throw error(code) }
        return try row(Columns(handle: handle))
    }

    private func start(_ bind: (inout Binder) -> Void) throws {
        let code = sqlite3_reset(handle)
        guard code == SQLITE_OK else { throw error(code) }
        var binder = Binder(handle: handle)
        bind(&binder)
        if let failed = binder.failure { throw error(failed) }
    }

    /// Leaves the statement reset and without bindings, as GRDB expects to find it (and so that
    /// it holds no read snapshot between uses).
    private func finish() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    private func error(_ code: CInt) -> DatabaseError {
        DatabaseError(
            resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(sqlite3_db_handle(handle))),
            sql: sql)
    }

    /// Binds parameters 1, 2, … in order. Blobs and text are copied by SQLite (SQLITE_TRANSIENT),
    /// so the Swift values need not outlive the call.
    struct Binder {
        let handle: OpaquePointer
        private var index: CInt = 1
        fileprivate(set) var failure: CInt?

        init(handle: OpaquePointer) { self.handle = handle }

        private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

        mutating func int(_ value: Int64) { check(sqlite3_bind_int64(handle, next(), value)) }
        mutating func int(_ value: Int) { int(Int64(value)) }

        /// An integer, or NULL for nil.
        mutating func optionalInt(_ value: Int?) {
            guard let value else { return check(sqlite3_bind_null(handle, next())) }
            int(value)
        }

        mutating func blob(_ bytes: [UInt8]) {
            let i = next()
            // An empty buffer has no base address, and a null pointer would bind NULL.
            check(bytes.withUnsafeBytes { buffer in
                guard let base = buffer.baseAddress, !buffer.isEmpty else { return sqlite3_bind_zeroblob(handle, i, 0) }
                return sqlite3_bind_blob(handle, i, base, CInt(buffer.count), Self.transient)
            })
        }

        mutating func blob(_ hash: Hash256) {
            let i = next()
            check(hash.withUnsafeBytes { sqlite3_bind_blob(handle, i, $0.baseAddress, CInt($0.count), Self.transient) })
        }

        mutating func text(_ value: String) {
            let i = next()
            var value = value
            check(value.withUTF8 { utf8 in
                guard let base = utf8.baseAddress, !utf8.isEmpty else { return sqlite3_bind_text(handle, i, "", 0, Self.transient) }
                return base.withMemoryRebound(to: CChar.self, capacity: utf8.count) { sqlite3_bind_text(handle, i, $0, CInt(utf8.count), Self.transient) }
            })
        }

        private mutating func next() -> CInt {
            defer { index += 1 }
            return index
        }

        private mutating func check(_ code: CInt) {
            if code != SQLITE_OK, failure == nil { failure = code }
        }
    }

    /// The current row's columns, 0-based. Blobs are read in place.
    struct Columns {
        let handle: OpaquePointer

        func int(_ column: CInt) -> Int64 { sqlite3_column_int64(handle, column) }

        func isNull(_ column: CInt) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }

        func text(_ column: CInt) -> String {
            guard let base = sqlite3_column_text(handle, column) else { return "" }
            return String(decoding: UnsafeBufferPointer(start: base, count: Int(sqlite3_column_bytes(handle, column))), as: UTF8.self)
        }

        func blob(_ column: CInt) -> UnsafeRawBufferPointer {
            let count = Int(sqlite3_column_bytes(handle, column))
            guard count > 0, let base = sqlite3_column_blob(handle, column) else { return UnsafeRawBufferPointer(start: nil, count: 0) }
            return UnsafeRawBufferPointer(start: base, count: count)
        }

        /// A 32-byte blob as a hash; nil when the column holds anything else.
        func hash(_ column: CInt) -> Hash256? {
            Hash256(raw: blob(column))
        }
    }
}

extension Database {
    /// Runs `body` in one IMMEDIATE transaction (as `write` would on the writer) and commits it, or
    /// rolls it back if `body` or the commit throws. Through cached statements: GRDB's
    /// `inTransaction` compiles its BEGIN and COMMIT anew each time, and in a profile of an agent
    /// minting a record per save the parsing of the BEGIN alone was about 3 % of its samples. Every
    /// write transaction of the store runs through this (commits, grants, the log reserve).
    func inCommittedTransaction<T>(_ body: () throws -> T) throws -> T {
        try cachedStatement(sql: "BEGIN IMMEDIATE TRANSACTION").execute()
        do {
            let out = try body()
            try cachedStatement(sql: "COMMIT TRANSACTION").execute()
            return out
        } catch {
            // A failed COMMIT may leave the transaction open (SQLITE_BUSY) or gone (SQLite rolled
            // back after an I/O error): roll back only what is still open.
            if isInsideTransaction { try? cachedStatement(sql: "ROLLBACK TRANSACTION").execute() }
            throw error
        }
    }
}
