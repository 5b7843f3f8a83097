import CWALFrames
import Foundation
import GRDB
import KVGossipCore
import Logging
import Synchronization

/// The durable tree of one node: records, revocations and the Merkle summary in one SQLite file
/// (WAL mode; a commit is on disk before any apply or mint returns: local writes sync inside the
/// commit, a peer's records right after they are published, `CommitSync`).
///
/// The store decides nothing itself: validity comes from `RecordValidator`, the winner from
/// `RecordVersion`, the summary from `MerkleTrie`. It keeps them consistent in one transaction.
public final class Store: Sendable {
    public static let fileName = "kvgossip.sqlite"

    public let root: PublicKey
    public let validator: RecordValidator
    /// How many earlier versions this host keeps (Docs/history.md §Bounds).
    public let historyBounds: HistoryBounds
    let db: DatabasePool
    public let clock: @Sendable () -> UInt64
    let logger: Logger
    let leafLimit = 16
    let state: Mutex<State>
    let changeFeed = ChangeFeed()
    /// Moves the WAL into the database file off the writer's path; nil for a store opened to read.
    let checkpointer: WALCheckpointer?
    /// Syncs the WAL after commits that are published before they are synced (`CommitSync`).
    let walSync: WALSync
    /// The `synchronous` level the writer connection is at: the one the last write set (`writing`).
    /// The store opens it at FULL.
    let writerSync = Mutex(CommitSync.beforePublishing)
    /// Answers `digests(of:)` on a connection of its own, outside the pool.
    let digestLookup: DigestLookup
    /// The smallest batch whose checks are spread over worker threads (and so may be begun ahead
    /// by `precheck`); a smaller one is checked by the caller before its transaction.
    static let spreadBatchRecords = 64
    /// Checks begun for batches that have arrived and are not yet applied (`precheck`), oldest
    /// first, at most `precheckedLimit`.
    let prechecked = Mutex<[VerdictPipeline]>([])
    static let precheckedLimit = 4
    /// Batches whose apply found their checks begun by `precheck` (for benchmarks and tests).
    public var precheckedBatchesTaken: Int { precheckedTaken.load(ordering: .relaxed) }
    let precheckedTaken = Atomic<Int>(0)
    static let precheckedMaxAgeMs: UInt64 = 2_000

    struct State {
        var revoked: Set<Hash256>
        var treeHash: Hash256
        var clockWentBack: ClockWentBack?
        var recentDigests = RecentDigests()
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
    /// - Parameter history: how many earlier versions this host keeps (Docs/history.md §Bounds).
    /// - Parameter logReserveBytes: the length the write-ahead log is kept at, at least, in zeros
    ///   ahead of its frames (`WALReserve`; the agent uses `agentLogReserveBytes`, 0 leaves it be).
    public convenience init(
        directory: String, root: PublicKey, limits: Limits = .default, history: HistoryBounds = .default,
        clock: @escaping @Sendable () -> UInt64 = Store.systemClockMs,
        logger: Logger = Logger(label: "kvgossip.store"), logReserveBytes: Int = 0
    ) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let layer = kvg_wal_frames_register()
        if layer != 0 {
            // Commits stay correct on SQLite's own file layer, only slower (Docs/architecture.md
            // §Durability, `CWALFrames`): worth a line, not a refusal to open.
            logger.warning("the write-ahead log's own file layer could not be installed; commits use SQLite's default one", metadata: [
                "sqlite result": "\(layer)",
            ])
        }
        var config = Configuration()
        config.prepareDatabase { db in
            // Sync batches touch pages all over the records table and its indexes; a larger
            // page cache and memory-mapped reads keep that from turning into read syscalls.
            // Readers map less: every pool connection maps the file on its own, and a mapped page
            // a reader touched counts in the agent's resident size for as long as the connection
            // lives (reading every key of a million-key tree through the mount left two readers
            // with 400 MB mapped between them).
            try db.execute(sql: "PRAGMA cache_size = -65536")
            try db.execute(sql: db.configuration.readonly ? "PRAGMA mmap_size = 67108864" : "PRAGMA mmap_size = 268435456")
        }
        config.busyMode = .timeout(10)
        let db = try DatabasePool(path: Store.path(directory), configuration: config)
        // Durable before a commit returns: the WAL is synced at every commit. GRDB turns the writer
        // to `synchronous = NORMAL` when it enables WAL (after `prepareDatabase`), which syncs only
        // at checkpoints and loses the last commits in a power cut; so it is set here, on the one
        // writer connection, once the pool is open.
        try db.writeWithoutTransaction { try $0.execute(sql: "PRAGMA synchronous = FULL") }
        if let refusal = try db.read({ try StoreSchema.refusal($0, directory: directory) }) { throw refusal }
        try StoreSchema.migrator.migrate(db)
        if logReserveBytes > 0 {
            // Only a speed-up: a store that cannot reserve (a full disk) opens all the same.
            do {
                _ = try WALReserve.ensure(db, bytes: logReserveBytes)
            } catch {
                logger.warning("could not reserve the write-ahead log; commits will grow it", metadata: ["error": "\(error)"])
            }
        }

        let loaded = try db.write { db -> State in
            if let stored = try db.meta(.cluster) {
                guard stored == root.bytes else {
                    throw StoreError.wrongCluster(stored: PublicKey(bytes: stored)?.text ?? "?", requested: root.text)
                }
            } else {
                try db.setMeta(.cluster, root.bytes)
            }
            return try Store.loadState(db)
        }
        // Checkpoints run on a thread of their own (`WALCheckpointer`), not after the commit that
        // fills the log.
        let checkpointer = try WALCheckpointer(path: Store.path(directory))
        do {
            try checkpointer.attach(to: db)
        } catch {
            checkpointer.detach(from: db)
            throw error
        }
        self.init(db: db, root: root, limits: limits, history: history, clock: clock, logger: logger, state: loaded, checkpointer: checkpointer)
        try enforceHistoryBounds()
    }

    /// The agent's log reserve: as much log as the checkpointer lets build up before its first
    /// copy (`WALCheckpointer.defaultWakeAtPages` frames: a 4 KB page and a 24-byte frame header
    /// each, after the log's 32-byte header), after which SQLite starts the log over and rewrites
    /// it in place anyway. So a fresh agent's commits rewrite space from the first one, at the
    /// cost of about 32 MB of disk that a busy agent's log takes up in any case.
    public static let agentLogReserveBytes = 32 + Int(WALCheckpointer.defaultWakeAtPages) * (4096 + 24)

    /// Opens an existing store only to read it (`kvgossip log --data`), beside a running agent or
    /// not: nothing is migrated or written, and the root is the one the store was created for.
    public convenience init(readingDirectory directory: String, limits: Limits = .default) throws {
        let path = Store.path(directory)
        guard FileManager.default.fileExists(atPath: path) else { throw StoreError.noStore(directory) }
        var config = Configuration()
        config.readonly = true
        config.busyMode = .timeout(10)
        let db = try DatabasePool(path: path, configuration: config)
        let (root, loaded) = try db.read { db -> (PublicKey, State) in
            if let refusal = try StoreSchema.refusal(db, directory: directory) { throw refusal }
            guard try db.tableExists("history"), let root = try db.meta(.cluster).flatMap(PublicKey.init(bytes:)) else {
                throw StoreError.needsUpgrade(directory)
            }
            return (root, try Store.loadState(db))
        }
        self.init(
            db: db, root: root, limits: limits, history: .off, clock: Store.systemClockMs, logger: Logger(label: "kvgossip.store"), state: loaded,
            checkpointer: nil)
    }

    private init(
        db: DatabasePool, root: PublicKey, limits: Limits, history: HistoryBounds, clock: @escaping @Sendable () -> UInt64,
        logger: Logger, state: State, checkpointer: WALCheckpointer?
    ) {
        self.checkpointer = checkpointer
        self.walSync = WALSync(databasePath: db.path)
        self.digestLookup = DigestLookup(path: db.path)
        self.root = root
        self.db = db
        self.clock = clock
        self.logger = logger
        self.historyBounds = history
        self.validator = RecordValidator(root: root, limits: limits)
        self.state = Mutex(state)
    }

    /// Detaching runs a write on the pool: the last reference to a store must not be dropped on
    /// its writer's queue (nothing here observes transactions, and the one asynchronous write,
    /// `releaseReadMemory`'s, does not hold the store, so it is not).
    deinit { if !closed.load(ordering: .relaxed) { checkpointer?.detach(from: db) } }

    /// Set once `close` has begun.
    private let closed = Atomic<Bool>(false)

    /// Called first on the writer's queue by every write: `close` sets the flag before it closes
    /// the writer on that queue, so a write that runs after the close throws here instead of
    /// reaching a connection GRDB has closed (which would hand SQLite a null handle).
    func refuseIfClosed() throws {
        if closed.load(ordering: .relaxed) { throw StoreError.closed }
    }

    /// Closes every connection to the database, the writer last, so that SQLite copies the
    /// write-ahead log into the database file and removes it, as it does when the last connection
    /// to a database closes (Docs/operations.md §Backup and restore). Writes under way finish
    /// first; anything asked of the store afterwards throws. Call it once nothing writes any more
    /// (the agent: after the mount, the servers and the gossip engine have stopped). A second call
    /// does nothing.
    public func close() throws {
        guard !closed.exchange(true, ordering: .relaxed) else { return }
        // The other connections first: the last one to close is the one that may remove the log,
        // and only the writer can (the pool's readers and the digest lookup open it read-only).
        // Each is closed even when one before it failed, and a failure is thrown after all were tried.
        let checkpointerClosed = Result { try checkpointer?.close(from: db) }
        digestLookup.close()
        db.releaseMemory()
        try db.close()
        try checkpointerClosed.get()
    }

    static func path(_ directory: String) -> String {
        URL(fileURLWithPath: directory).appendingPathComponent(Store.fileName).path
    }

    private static func loadState(_ db: Database) throws -> State {
        let revoked = try Data.fetchAll(db.cachedStatement(sql: "SELECT grant_id FROM revocations")).map { Hash256(bytes: [UInt8]($0))! }
        return State(revoked: Set(revoked), treeHash: try Store.treeHash(db), clockWentBack: nil)
    }

    public static let systemClockMs: @Sendable () -> UInt64 = {
        UInt64(Date().timeIntervalSince1970 * 1000)
    }

    /// SQLite's `synchronous` setting on the writer connection between commits (2 = FULL: a commit
    /// syncs the WAL before it returns; each commit sets the level it needs, `CommitSync`).
    public var synchronousLevel: Int {
        get throws {
            try db.writeWithoutTransaction {
                try refuseIfClosed()
                return try $0.synchronousLevel()
            }
        }
    }

    /// The root over both Merkle summaries, as of the last commit.
    public var treeHash: Hash256 { state.withLock { $0.treeHash } }

    public func isRevoked(_ grantID: Hash256) -> Bool { state.withLock { $0.revoked.contains(grantID) } }

    /// The current record (value or tombstone) of `key`.
    public func record(_ key: Key) throws -> KVGossipCore.Record? {
        try db.read { db in try Store.fetchRecord(db, key: key) }
    }

    /// The digest of each key's current record (nil where there is none), without decoding a
    /// record: from the last commits where they name every key (`RecentDigests`), else read outside
    /// the pool (`DigestLookup`). What a push's receiver compares before verifying anything.
    public func digests(of keys: [Key]) throws -> [Hash256?] {
        try refuseIfClosed()
        let known = state.withLock { s in keys.compactMap { s.recentDigests.lookup($0) } }
        if known.count == keys.count { return known }
        return try digestLookup.digests(of: keys)
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
    case noStore(String)
    case needsUpgrade(String)
    /// A newer release wrote the store: it records schema steps this release does not know.
    case newerSchema(directory: String, unknownSteps: [String])
    /// The store was closed (`Store.close`): the agent is stopping.
    case closed

    public var description: String {
        switch self {
        case .wrongCluster(let stored, let requested):
            "this data directory belongs to the cluster with root \(stored), not \(requested)"
        case .noStore(let directory):
            "\(directory) holds no store (\(Store.fileName))"
        case .needsUpgrade(let directory):
            "the store in \(directory) predates history; start the agent on it once to upgrade it"
        case .newerSchema(let directory, let unknown):
            "the store in \(directory) was written by a newer kvgossip (schema steps this release does not know: "
                + unknown.joined(separator: ", ")
                + "); refusing to open it, so nothing is lost: install that release again (or move the directory aside to start empty)"
        case .closed:
            "the store is closed"
        }
    }
}

extension Limits {
    init(maxValueBytes: Int) {
        self.init()
        self.maxValueBytes = maxValueBytes
    }
}

extension Database {
    /// SQLite's `synchronous` setting on this connection (1 NORMAL, 2 FULL).
    func synchronousLevel() throws -> Int { try Int.fetchOne(self, sql: "PRAGMA synchronous") ?? -1 }
}
