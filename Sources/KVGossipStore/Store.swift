import Foundation
import GRDB
import KVGossipCore
import Logging
import Synchronization

/// The durable tree of one node: records, revocations and the Merkle summary in one SQLite file
/// (WAL mode, `synchronous = FULL` on the writer, so a commit is on disk before any apply or mint
/// returns).
///
/// The store decides nothing itself: validity comes from `RecordValidator`, the winner from
/// `RecordVersion`, the summary from `MerkleTrie`. It keeps them consistent in one transaction.
public final class Store: Sendable {
    public static let fileName = "kvgossip.sqlite"

    public let root: PublicKey
    public let validator: RecordValidator
    let db: DatabasePool
    public let clock: @Sendable () -> UInt64
    let logger: Logger
    let leafLimit = 16
    let state: Mutex<State>
    let changeFeed = ChangeFeed()

    struct State {
        var revoked: Set<Hash256>
        var treeHash: Hash256
        var clockWentBack: ClockWentBack?
    }

    /// This node's clock found far behind the last timestamp it minted (Docs/contract.md §Ordering).
    public struct ClockWentBack: Sendable, Equatable {
        /// The last timestamp minted before the jump, and the clock when it was noticed.
        public let lastMinted: HLC
        public let noticedAtMs: UInt64

        public var seconds: UInt64 { (lastMinted.physicalMs &- noticedAtMs) / 1000 }
    }

    /// The latest clock jump noticed while minting, if any (reported until the clock passes the
    /// timestamp it fell behind).
    public var clockWentBack: ClockWentBack? {
        state.withLock { s in
            guard let jump = s.clockWentBack, jump.lastMinted.physicalMs > clock() else { return nil }
            return jump
        }
    }

    func noteClockWentBack(lastMinted: HLC, nowMs: UInt64) {
        let first = state.withLock { s -> Bool in
            defer { s.clockWentBack = ClockWentBack(lastMinted: lastMinted, noticedAtMs: nowMs) }
            return s.clockWentBack?.lastMinted != lastMinted
        }
        if first {
            logger.warning("this node's clock is far behind the last timestamp it minted; dating new records by the clock", metadata: [
                "last minted": "\(lastMinted.rfc3339)", "clock": "\(HLC(physicalMs: nowMs).rfc3339)",
            ])
        }
    }

    /// Opens (or creates) the store in `directory` for the cluster whose root key is `root`.
    /// - Parameter clock: Unix milliseconds; injectable so tests can move time.
    public init(
        directory: String, root: PublicKey, limits: Limits = .default,
        clock: @escaping @Sendable () -> UInt64 = Store.systemClockMs,
        logger: Logger = Logger(label: "kvgossip.store")
    ) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var config = Configuration()
        config.prepareDatabase { db in
            // Sync batches touch pages all over the records table and its indexes; a larger
            // page cache and memory-mapped reads keep that from turning into read syscalls.
            try db.execute(sql: "PRAGMA cache_size = -65536")
            try db.execute(sql: "PRAGMA mmap_size = 268435456")
            // Checkpoint less often than every 4 MB: a sync of a large tree writes tens of MB.
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 8192")
        }
        config.busyMode = .timeout(10)
        let path = URL(fileURLWithPath: directory).appendingPathComponent(Store.fileName).path
        let db = try DatabasePool(path: path, configuration: config)
        // Durable before a commit returns: the WAL is synced at every commit. GRDB turns the writer
        // to `synchronous = NORMAL` when it enables WAL (after `prepareDatabase`), which syncs only
        // at checkpoints and loses the last commits in a power cut; so it is set here, on the one
        // writer connection, once the pool is open.
        try db.writeWithoutTransaction { try $0.execute(sql: "PRAGMA synchronous = FULL") }
        try StoreSchema.migrator.migrate(db)

        let loaded = try db.write { db -> State in
            if let stored = try db.meta(.cluster) {
                guard stored == root.bytes else {
                    throw StoreError.wrongCluster(stored: PublicKey(bytes: stored)?.text ?? "?", requested: root.text)
                }
            } else {
                try db.setMeta(.cluster, root.bytes)
            }
            let revoked = try Data.fetchAll(db.cachedStatement(sql: "SELECT grant_id FROM revocations")).map { Hash256(bytes: [UInt8]($0))! }
            return State(revoked: Set(revoked), treeHash: try Store.treeHash(db), clockWentBack: nil)
        }
        self.root = root
        self.db = db
        self.clock = clock
        self.logger = logger
        self.validator = RecordValidator(root: root, limits: limits)
        self.state = Mutex(loaded)
    }

    public static let systemClockMs: @Sendable () -> UInt64 = {
        UInt64(Date().timeIntervalSince1970 * 1000)
    }

    /// SQLite's `synchronous` setting on the writer connection (2 = FULL: every commit syncs the WAL).
    public var synchronousLevel: Int {
        get throws { try db.writeWithoutTransaction { try Int.fetchOne($0, sql: "PRAGMA synchronous") ?? -1 } }
    }

    /// The root over both Merkle summaries, as of the last commit.
    public var treeHash: Hash256 { state.withLock { $0.treeHash } }

    public func isRevoked(_ grantID: Hash256) -> Bool { state.withLock { $0.revoked.contains(grantID) } }

    /// The current record (value or tombstone) of `key`.
    public func record(_ key: Key) throws -> KVGossipCore.Record? {
        try db.read { db in try Store.fetchRecord(db, key: key) }
    }

    /// Records whose key is `prefix` or lies below it (all records for nil), in key order.
    /// Tombstones are included; callers that show a tree filter them.
    public func records(under prefix: Key?) throws -> [KVGossipCore.Record] {
        try db.read { db in try fetchRecords(db, under: prefix) }
    }

    /// `records(under:)` inside an open read transaction.
    func fetchRecords(_ db: Database, under prefix: Key?) throws -> [KVGossipCore.Record] {
        guard let prefix else {
            return try Data.fetchAll(db.cachedStatement(sql: "SELECT encoded FROM records ORDER BY key")).map(decode)
        }
        // '/' is 0x2F and '0' is 0x30: keys strictly below `prefix` sort in [prefix/, prefix0).
        return try Data.fetchAll(db.cachedStatement(sql: "SELECT encoded FROM records WHERE key = ? OR (key >= ? AND key < ?) ORDER BY key"),
            arguments: [prefix.path, prefix.path + "/", prefix.path + "0"]
        ).map(decode)
    }

    /// Records whose key matches `pattern`, in key order; the scan is narrowed to its literal prefix.
    public func records(matching pattern: Pattern) throws -> [KVGossipCore.Record] {
        try records(matchingAny: [pattern]).records
    }

    /// Keys holding a value (tombstones not counted): the keys a reader sees.
    public var valueCount: Int {
        get throws { try db.read { try Int.fetchOne($0.cachedStatement(sql: "SELECT COUNT(*) FROM records WHERE kind = ?"), arguments: [Int64(KVGossipCore.Record.Kind.value.rawValue)]) ?? 0 } }
    }

    public var recordCount: Int {
        get throws { try db.read { try Int.fetchOne($0.cachedStatement(sql: "SELECT COUNT(*) FROM records")) ?? 0 } }
    }

    public func revocations() throws -> [Revocation] {
        try db.read { db in
            try Data.fetchAll(db.cachedStatement(sql: "SELECT encoded FROM revocations ORDER BY grant_id"))
                .map { try Revocation(decoding: [UInt8]($0), limits: validator.limits) }
        }
    }

    /// Every change committed from now on, in commit order.
    public func changes() -> AsyncStream<StoreChange> { changeFeed.subscribe() }

    /// Calls `body` with each committed batch of changes on the committing thread, before the write
    /// that caused them returns: for caches that must never lag the store. `body` must be quick and
    /// must not take locks a writer might hold while writing.
    public func observeCommits(_ body: @escaping @Sendable ([StoreChange]) -> Void) -> CommitObservation {
        changeFeed.observe(body)
    }

    func decode(_ data: Data) throws -> KVGossipCore.Record {
        try KVGossipCore.Record(decoding: [UInt8](data), limits: validator.limits)
    }

    static func fetchRecord(_ db: Database, key: Key) throws -> KVGossipCore.Record? {
        try Data.fetchOne(db.cachedStatement(sql: "SELECT encoded FROM records WHERE key = ?"), arguments: [key.path])
            .map { try KVGossipCore.Record(decoding: [UInt8]($0), limits: Limits(maxValueBytes: Int(UInt32.max))) }
    }

    static func treeHash(_ db: Database) throws -> Hash256 {
        let records = try db.meta(.recordsRoot).flatMap { Hash256(bytes: $0) } ?? .zero
        let revocations = try db.meta(.revocationsRoot).flatMap { Hash256(bytes: $0) } ?? .zero
        return SummaryEntries.treeHash(records: records, revocations: revocations)
    }
}

public enum StoreError: Error, CustomStringConvertible {
    case wrongCluster(stored: String, requested: String)

    public var description: String {
        switch self {
        case .wrongCluster(let stored, let requested):
            "this data directory belongs to the cluster with root \(stored), not \(requested)"
        }
    }
}

extension Limits {
    init(maxValueBytes: Int) {
        self.init()
        self.maxValueBytes = maxValueBytes
    }
}
