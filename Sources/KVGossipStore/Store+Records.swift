import Foundation
import GRDB
import KVGossipCore

/// What applying one record did.
public enum ApplyOutcome: Sendable, Equatable {
    /// Stored as the key's new winner.
    case accepted
    /// This exact record was already stored (a push that needs no forwarding).
    case duplicate
    /// Valid, but the stored record wins (Docs/contract.md §Ordering).
    case superseded(current: RecordVersion)
    /// Not valid here. For `revoked`, the revocations that caused it, so the sender can apply them.
    case refused(Refusal, revocations: [Revocation])

    public var isAccepted: Bool { self == .accepted }
}

/// When a commit's WAL is synced: before its changes are published, or after (Docs/architecture.md
/// §Durability). Either way before the write returns, so before anything acknowledges it.
enum CommitSync: Equatable {
    case beforePublishing
    case afterPublishing

    /// A local write is on disk before anyone sees it: a close() or a control answer that fails
    /// leaves nothing behind. A record from a peer is shown once it is in the log: the host that
    /// minted it synced it before sending it, and no host answers for a copy before its own sync,
    /// so a power cut here loses only this host's unacknowledged copy, which a session brings back.
    init(_ origin: CommitOrigin) {
        self = origin == .local ? .beforePublishing : .afterPublishing
    }
}

extension Store {
    /// Verifies and applies one record; durable before it returns.
    public func apply(_ record: KVGossipCore.Record, origin: CommitOrigin = .local) throws -> ApplyOutcome {
        try apply([record], origin: origin)[0]
    }

    /// Verifies a batch (signatures and chains) and applies the valid records in ONE transaction
    /// with their summary updates: durable when it returns. A batch worth spreading is checked on
    /// every core while the transaction stores the records already checked (`VerdictPipeline`);
    /// a small one is checked before the transaction begins. Revocations that arrived since the
    /// checks began still win (`store` checks the chain against the revoked set read inside the
    /// transaction).
    public func apply(_ batch: [KVGossipCore.Record], origin: CommitOrigin = .local) throws -> [ApplyOutcome] {
        if batch.count < Store.spreadBatchRecords { checkpointer?.readAhead?.beforeCommit() }
        let checks = takePrechecked(batch) ?? verdicts(for: batch)
        defer { checks.cancel() }
        return try commit(CommitSync(origin)) { db, tx in
            var outcomes: [ApplyOutcome] = []
            outcomes.reserveCapacity(batch.count)
            let revoked = state.withLock { $0.revoked }
            let now = clock()
            for (index, record) in batch.enumerated() {
                switch checks.verdict(at: index) {
                case .refused(let refusal, let revokedIDs):
                    outcomes.append(.refused(refusal, revocations: try Store.fetchRevocations(db, revokedIDs, limits: validator.limits)))
                case .authorized(let chain):
                    outcomes.append(try tx.store(record, chain: chain, db: db, validator: validator, revoked: revoked, nowMs: now, origin: origin))
                }
            }
            return outcomes
        }
    }

    /// Mints a record signed by `signer` with the next timestamp for `key` (the mint rule of
    /// Docs/contract.md §Ordering) and applies it. `value` nil mints a tombstone.
    ///
    /// The last minted timestamp is kept in the store and advances only with an accepted record; a
    /// clock found far behind it is reported (`clockWentBack`) and the record is dated by the clock.
    public func mint(key: Key, value: [UInt8]?, signer: SigningKey, pool: [Grant]) throws -> (KVGossipCore.Record, ApplyOutcome) {
        checkpointer?.readAhead?.beforeCommit()
        return try commit { db, tx in
            let now = clock()
            let current = try Store.fetchVersion(db, key: key)
            let lastMinted = try db.meta(.lastMinted).flatMap { bytes -> HLC? in
                var r = ByteReader(bytes)
                return (try? r.u64("last minted")).map(HLC.init(raw:))
            }
            let plan = HLC.mintPlan(nowMs: now, current: current?.timestamp, lastMinted: lastMinted, maxSkewMs: validator.limits.maxSkewMs)
            if let setAside = plan.setAside { noteClockWentBack(lastMinted: setAside, nowMs: now) }
            let record = KVGossipCore.Record(
                cluster: root, key: key, kind: value == nil ? .tombstone : .value, value: value ?? [],
                timestamp: plan.timestamp, signer: signer, pool: pool)
            let revoked = state.withLock { $0.revoked }
            switch validator.validate(record, nowMs: now, isRevoked: revoked.contains) {
            case .refused(let refusal, let ids):
                // The writers' rule says why in terms of the key's current record, when that is the cause.
                var refusal = refusal
                if refusal.reason == .clockSkew,
                    let why = HLC.refusalToMint(plan.timestamp, after: current?.timestamp, key: key, nowMs: now, maxSkewMs: validator.limits.maxSkewMs)
                {
                    refusal = why
                }
                return (record, .refused(refusal, revocations: try Store.fetchRevocations(db, ids, limits: validator.limits)))
            case .authorized(let chain):
                let outcome = try tx.store(record, chain: chain, db: db, validator: validator, revoked: revoked, nowMs: now, origin: .local)
                if outcome == .accepted {
                    var w = ByteWriter()
                    w.u64(plan.timestamp.raw)
                    try db.setMeta(.lastMinted, w.bytes)
                }
                return (record, outcome)
            }
        }
    }

    /// The checks of a batch, started: on the worker threads for a batch of `spreadBatchRecords`
    /// records or more, else all done here, before the caller opens its transaction.
    func verdicts(for batch: [KVGossipCore.Record]) -> VerdictPipeline {
        let now = clock()
        let revoked = state.withLock { $0.revoked }
        let validator = self.validator
        let pipeline = VerdictPipeline(batch, nowMs: now) { validator.validate($0, nowMs: now, isRevoked: revoked.contains) }
        if batch.count >= Store.spreadBatchRecords {
            // The core count only for a batch worth spreading: Foundation reads it from the cgroup
            // files on every call, two opens and reads per apply of a single pushed record.
            pipeline.start(workers: min(ProcessInfo.processInfo.activeProcessorCount, 8))
        } else {
            for index in batch.indices { _ = pipeline.verdict(at: index) }
        }
        return pipeline
    }

    /// Begins the checks of a batch that will be applied soon, so they run while the store is busy
    /// with the batch before it (the pulled batches of a sync session arrive two at a time, and
    /// the one behind would otherwise wait for the commit of the one ahead with its checks not
    /// begun). `apply` of the same records takes the checks up where they are. Small batches are
    /// left alone; past `precheckedLimit` batches the oldest is dropped and its workers stopped.
    public func precheck(_ batch: [KVGossipCore.Record]) {
        guard batch.count >= Store.spreadBatchRecords else { return }
        let pipeline = verdicts(for: batch)
        let now = pipeline.nowMs
        let dropped = prechecked.withLock { waiting -> [VerdictPipeline] in
            var dropped = Store.removeStale(from: &waiting, now: now)
            waiting.append(pipeline)
            if waiting.count > Store.precheckedLimit { dropped.append(waiting.removeFirst()) }
            return dropped
        }
        for pipeline in dropped { pipeline.cancel() }
    }

    /// The checks begun by `precheck` for exactly these records (byte for byte), taken out of the
    /// waiting list. Stale checks are dropped on the way.
    func takePrechecked(_ batch: [KVGossipCore.Record]) -> VerdictPipeline? {
        guard batch.count >= Store.spreadBatchRecords else { return nil }
        let now = clock()
        let (taken, stale) = prechecked.withLock { waiting -> (VerdictPipeline?, [VerdictPipeline]) in
            let stale = Store.removeStale(from: &waiting, now: now)
            return (waiting.firstIndex { $0.checks(batch) }.map { waiting.remove(at: $0) }, stale)
        }
        for pipeline in stale { pipeline.cancel() }
        if taken != nil { precheckedTaken.add(1, ordering: .relaxed) }
        return taken
    }

    /// Checks judged by a clock more than `precheckedMaxAgeMs` from `now`, either way (the clock
    /// may have been stepped back): a record is judged by the clock of its apply, give or take that.
    static func isStale(_ pipeline: VerdictPipeline, now: UInt64) -> Bool {
        now > pipeline.nowMs + precheckedMaxAgeMs || pipeline.nowMs > now + precheckedMaxAgeMs
    }

    /// Takes the stale checks out of `waiting` and returns them, for the caller to cancel outside
    /// the lock.
    static func removeStale(from waiting: inout [VerdictPipeline], now: UInt64) -> [VerdictPipeline] {
        let stale = waiting.filter { isStale($0, now: now) }
        waiting.removeAll { isStale($0, now: now) }
        return stale
    }

    /// Runs `body` in one write transaction, then folds its Merkle changes into the summary,
    /// stores the new roots, commits, and only then publishes the changes.
    ///
    /// With `.beforePublishing` SQLite syncs the WAL inside the commit. With `.afterPublishing` the
    /// commit runs at `synchronous = NORMAL` (in the log, safe from a kill, not yet from a power
    /// cut), its changes are published, and the log is synced before this returns; the sync runs
    /// outside the writer's queue, beside the next commit. Every other write on the writer (a
    /// local one, grants, history bounds) runs at FULL and syncs inside its commit (`writing`).
    func commit<T>(_ sync: CommitSync = .beforePublishing, _ body: (Database, inout PendingTransaction) throws -> T) throws -> T {
        let (result, changes, hash) = try writing(sync) { db -> (T, [StoreChange], Hash256) in
            if sync == .afterPublishing { walSync.willCommit() }
            return try db.inCommittedTransaction { try transaction(db, body) }
        }
        state.withLock {
            $0.treeHash = hash
            for case .revocation(let r) in changes { $0.revoked.insert(r.grantID) }
            $0.recentDigests.note(changes)
        }
        changeFeed.publish(changes)
        if sync == .afterPublishing {
            do {
                try walSync.sync()
            } catch {
                logger.critical("\(error)")
                throw error
            }
        }
        return result
    }

    /// Runs `body` on the writer's queue, outside any transaction, unless the store is closed or
    /// its log failed to sync. An I/O error SQLite meets in it (writing or syncing the log) is kept
    /// like a failed sync of ours (Docs/architecture.md §Durability): the kernel may have dropped
    /// the log's pages, so nothing committed afterwards could be vouched for.
    ///
    /// `sync` is when the commits of `body` are synced: the writer runs it at FULL (SQLite syncs the
    /// log inside each commit) unless it is a peer's commit, synced by `WALSync` after its publish.
    func writing<T>(_ sync: CommitSync = .beforePublishing, _ body: (Database) throws -> T) throws -> T {
        try walSync.refuseAfterFailure()
        do {
            return try db.writeWithoutTransaction { db in
                try refuseIfClosed()
                try setWriterSync(sync, db)
                return try body(db)
            }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_IOERR {
            let kept = walSync.latch(errno: EIO)
            logger.critical("\(error.message ?? "an I/O error"): \(kept)")
            throw kept
        }
    }

    /// Puts the writer at the `synchronous` level `sync` needs, if the last write left it at the
    /// other: a run of peers' commits, or of local ones, switches nothing. SQLite compiles a
    /// `PRAGMA synchronous` anew each time it runs; switching to NORMAL before each peer's commit
    /// and back to FULL after it was 13 % of a receiver's writer time (Docs/architecture.md
    /// §Durability). Set before `body` runs, whatever the last write's outcome.
    private func setWriterSync(_ sync: CommitSync, _ db: Database) throws {
        guard writerSync.withLock({ $0 != sync }) else { return }
        try db.execute(sql: sync == .beforePublishing ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL")
        writerSync.withLock { $0 = sync }
    }

    /// Syncs the peer records committed and not yet synced, if any (another thread's `apply` is
    /// between its publish and its sync): for answers drawn from what readers see (a pushed record
    /// found already held, a tree hash), which must not acknowledge a record before it is durable.
    public func syncPeerRecords() throws {
        try walSync.syncIfBehind()
    }

    /// Why this store accepts no more writes, after a failed sync of its log (nil while it does).
    public var syncFailure: String? { walSync.failed?.description }

    /// The body of `commit`'s transaction: the caller's changes, then the summary and the roots.
    private func transaction<T>(_ db: Database, _ body: (Database, inout PendingTransaction) throws -> T) throws -> (T, [StoreChange], Hash256) {
        var tx = PendingTransaction(history: historyBounds)
        let result = try body(db, &tx)
        try tx.settleHistoryBytes(db: db)
        if !tx.recordChanges.isEmpty {
            var backend = SQLiteMerkleBackend(db: db, space: .records)
            let root = try MerkleTrie.apply(tx.recordChanges.merged, to: &backend, leafLimit: leafLimit)
            try db.setMeta(.recordsRoot, root.bytes)
        }
        if !tx.revocationChanges.isEmpty {
            var backend = SQLiteMerkleBackend(db: db, space: .revocations)
            let root = try MerkleTrie.apply(tx.revocationChanges.merged, to: &backend, leafLimit: leafLimit)
            try db.setMeta(.revocationsRoot, root.bytes)
        }
        return (result, tx.published, try Store.treeHash(db))
    }

    static func fetchVersion(_ db: Database, key: Key) throws -> RecordVersion? {
        try fetchStoredVersion(db, key: key)?.version
    }

    /// The key's current row: its version, the size of its encoding (what history would keep) and
    /// how many earlier versions history holds for it. With `encodingIfBelow`, also the encoding
    /// when the row's version is below that one (the row is about to be written over and history
    /// keeps it), so duplicates and beaten arrivals copy nothing.
    static func fetchStoredVersion(_ db: Database, key: Key, encodingIfBelow incoming: RecordVersion? = nil) throws -> StoredRow? {
        let statement: DirectStatement
        if incoming != nil {
            statement = try DirectStatement(db, """
                SELECT ts, kind, digest, length(encoded), rowid, history_versions,
                    CASE WHEN (ts, kind, digest) < (?2, ?3, ?4) THEN encoded END
                FROM records WHERE key = ?1
                """)
        } else {
            statement = try DirectStatement(db, "SELECT ts, kind, digest, length(encoded), rowid, history_versions FROM records WHERE key = ?")
        }
        return try statement.firstRow({
            $0.text(key.path)
            if let incoming {
                $0.int(Int64(bitPattern: incoming.timestamp.raw))
                $0.int(Int64(incoming.kind.rawValue))
                $0.blob(incoming.digest)
            }
        }) { row in
            guard let digest = row.hash(2) else { throw StoreCorruption("the record of \(key) has a digest that is not 32 bytes") }
            let version = RecordVersion(
                timestamp: HLC(raw: UInt64(bitPattern: row.int(0))),
                kind: KVGossipCore.Record.Kind(rawValue: UInt8(truncatingIfNeeded: row.int(1))) ?? .value,
                digest: digest)
            return StoredRow(
                rowid: row.int(4), version: version, size: Int(row.int(3)), historyVersions: row.isNull(5) ? nil : Int(row.int(5)),
                encoded: incoming != nil && !row.isNull(6) ? [UInt8](row.blob(6)) : nil)
        }
    }

    static func fetchRevocations(_ db: Database, _ ids: [Hash256], limits: Limits) throws -> [Revocation] {
        try ids.compactMap { id in
            try Data.fetchOne(db.cachedStatement(sql: "SELECT encoded FROM revocations WHERE grant_id = ?"), arguments: [Data(id.bytes)])
                .map { try Revocation(decoding: [UInt8]($0), limits: limits) }
        }
    }
}

/// A key's current row as a write transaction finds it.
struct StoredRow {
    let rowid: Int64
    let version: RecordVersion
    /// Bytes of the record's encoding: what history would keep of it.
    let size: Int
    /// How many earlier versions of the key history holds, or more (never fewer): trimming by the
    /// byte budget or by a lowered bound leaves it high until the key's next trim corrects it.
    /// nil when not known (rows written before the count was kept). It spares each replacement a
    /// walk of the key's versions when the key is well within its bound (Docs/history.md §Bounds).
    var historyVersions: Int?
    /// The record's encoding, when the lookup brought it (see `Store.fetchStoredVersion`).
    var encoded: [UInt8]? = nil
}

/// What one write transaction has done so far: summary changes to fold in and changes to publish.
struct PendingTransaction {
    /// What history keeps (Docs/history.md §Bounds), and how this transaction changed it.
    let history: HistoryBounds
    var historyBytesDelta = 0
    var historyChanged = false
    var recordChanges = SummaryChanges()
    var revocationChanges = SummaryChanges()
    var published: [StoreChange] = []

    /// Stores an authorized record if it beats the current one. Re-checks the chain against the
    /// revoked set read inside this transaction, so a revocation committed after validation began
    /// still wins.
    mutating func store(
        _ record: KVGossipCore.Record, chain: [Grant], db: Database, validator: RecordValidator, revoked: Set<Hash256>,
        nowMs: UInt64, origin: CommitOrigin
    ) throws -> ApplyOutcome {
        var chain = chain
        if chain.contains(where: { revoked.contains($0.id) }) {
            // The checks ran with an older revoked set (before the transaction, or begun as the
            // batch arrived): search again with this one, since another chain in the pool may hold.
            switch validator.validate(record, nowMs: nowMs, isRevoked: revoked.contains) {
            case .authorized(let other):
                chain = other
            case .refused(let refusal, let ids):
                return .refused(refusal, revocations: try Store.fetchRevocations(db, ids, limits: validator.limits))
            }
        }
        var stored = try Store.fetchStoredVersion(db, key: record.key, encodingIfBelow: history.isOff ? nil : record.version)
        let current = stored?.version
        if let row = stored {
            if row.version.digest == record.digest { return .duplicate }
            if record.version < row.version {
                try keepBeatenInHistory(record, current: row, db: db)
                return .superseded(current: row.version)
            }
            stored?.historyVersions = try keepCurrentInHistory(record.key, row: row, db: db)
        }
        let position = try write(record, db: db, over: stored)
        recordChanges.add(position, delta: current == nil ? 1 : 0)
        published.append(.record(record, previous: current, origin: origin))
        return .accepted
    }

    /// Writes the key's row (with its summary entry) and its grant index: over the row `existing`
    /// (a new winner or a pruned pool), or as a new row when the key has none. A new row counts the
    /// versions history already holds for its key (one unset by a revocation keeps them); a row
    /// written over takes `existing.historyVersions`. Returns the record's position in the summary
    /// (the hash of its key).
    @discardableResult
    func write(_ record: KVGossipCore.Record, db: Database, over existing: StoredRow?) throws -> Hash256 {
        let entry = SummaryEntries.entry(for: record)
        // Both statements number their parameters alike: ?1 … ?8 are the row's columns.
        func bindColumns(_ b: inout DirectStatement.Binder) {
            b.text(record.key.path)
            b.blob(entry.id)
            b.blob(entry.digest)
            b.int(Int64(bitPattern: record.timestamp.raw))
            b.int(Int64(record.kind.rawValue))
            b.blob(record.digest)
            b.blob(record.signer.bytes)
            b.blob(record.encoded)
        }
        if let existing {
            let changed = try DirectStatement(db, """
                UPDATE records SET entry_digest = ?3, ts = ?4, kind = ?5, digest = ?6, signer = ?7, encoded = ?8,
                    history_versions = ?9
                WHERE rowid = ?10 AND key = ?1
                """).run {
                bindColumns(&$0)
                $0.optionalInt(existing.historyVersions)
                $0.int(existing.rowid)
            }
            // The row was looked up in this transaction: anything else is a bug, not a miss to skip.
            guard changed == 1 else { throw StoreCorruption("the row of \(record.key) was not where its lookup found it") }
        } else {
            try DirectStatement(db, """
                INSERT INTO records (key, key_hash, entry_digest, ts, kind, digest, signer, encoded, history_versions)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, (SELECT COUNT(*) FROM history WHERE key = ?1))
                """).run { bindColumns(&$0) }
        }
        let grants = Set(record.pool.map(\.id))
        if existing != nil {
            // A new version usually cites the grants the old one did: then the rows stay as they
            // are, and their pages are not written again.
            var held = Set<Hash256>()
            try DirectStatement(db, "SELECT grant_id FROM record_grants WHERE key = ?").forEachRow({ $0.text(record.key.path) }) { row in
                guard let id = row.hash(0) else { throw StoreCorruption("a grant id cited by \(record.key) is not 32 bytes") }
                held.insert(id)
            }
            if held == grants { return entry.id }
            try DirectStatement(db, "DELETE FROM record_grants WHERE key = ?").run { $0.text(record.key.path) }
        }
        let insertGrant = try DirectStatement(db, "INSERT INTO record_grants (grant_id, key) VALUES (?, ?)")
        for id in grants {
            try insertGrant.run {
                $0.blob(id)
                $0.text(record.key.path)
            }
        }
        return entry.id
    }
}

/// Summary changes of one transaction, merged per position (two writes of one key in a batch are
/// one insertion, not two).
struct SummaryChanges {
    private var deltas: [Hash256: Int] = [:]

    var isEmpty: Bool { deltas.isEmpty }

    mutating func add(_ id: Hash256, delta: Int) { deltas[id, default: 0] += delta }

    var merged: [MerkleChange] { deltas.map { MerkleChange(id: $0.key, countDelta: $0.value) } }
}
