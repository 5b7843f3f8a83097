import Glibc
import KVGossipCore
import KVGossipStore

extension FSState {
    /// Mints `value` (nil: a tombstone) and folds the record into the truth. Runs under the state
    /// lock: the mint is durable when it returns, so the view and the store never disagree about a
    /// local edit, and the follower (which needs the lock) sees the view already updated when the
    /// store's change for this record reaches it. A save through a handle mints outside the lock
    /// instead (`prepareCommit`).
    mutating func mint(_ key: Key, _ value: [UInt8]?) throws(FSError) -> Record {
        let record = try Self.mint(key, value, ctx: ctx)
        truth.apply(record)
        return record
    }

    /// The mint itself: SQLite and fsync, touching no state.
    static func mint(_ key: Key, _ value: [UInt8]?, ctx: MountContext) throws(FSError) -> Record {
        if let value, value.count > ctx.maxValueBytes { throw FSError(EFBIG) }
        let record: Record, outcome: ApplyOutcome
        do {
            (record, outcome) = try ctx.node.mint(key, value: value)
        } catch {
            ctx.logger.error("mint failed", metadata: ["key": "\(key)", "error": "\(error)"])
            throw FSError(EIO)
        }
        switch outcome {
        case .accepted, .duplicate:
            return record
        case .refused(let refusal, _):
            ctx.logger.warning("mint refused", metadata: ["key": "\(key)", "reason": "\(refusal)"])
            switch refusal.reason {
            case .noAuthority, .revoked, .expired: throw FSError(EACCES)
            case .tooLarge: throw FSError(EFBIG)
            case .invalidKey: throw FSError(EINVAL)
            case .badSignature, .clockSkew, .malformed: throw FSError(EIO)
            }
        case .superseded(let current):
            ctx.logger.error("own mint superseded", metadata: ["key": "\(key)", "current": "\(current.timestamp)"])
            throw FSError(EIO)
        }
    }

    /// The view shows a record this mount just committed at `path`.
    mutating func showCommitted(_ path: String, _ record: Record) {
        let shown = truth.entry(path, at: record.version) ?? TruthEntry(record)
        view.update(path) {
            $0.shown = shown
            $0.mtimeMs = shown.mtimeMs
        }
        view.clearLocal(above: path)
        hidden[path] = nil
    }

    /// A save through a handle that still has to be minted: what `prepareCommit` decided under the
    /// lock, minted without it (`MountCore.commit`), then shown by `finishCommit`.
    struct PendingCommit: Sendable {
        let fh: UInt64
        let path: String
        let key: Key
        let bytes: [UInt8]
    }

    /// Commits a writer's buffer as ONE record at the name its inode has now (a file renamed while
    /// open commits under its new name; one unlinked while open commits nowhere, as its bytes would
    /// vanish on a local filesystem). A key's record is not minted here but returned, to be minted
    /// without the state lock; the path is marked as committing until `finishCommit`.
    mutating func prepareCommit(_ fh: UInt64) throws(FSError) -> PendingCommit? {
        guard let file = files[fh], file.isWriter, file.dirty else { return nil }
        if file.poisoned { throw FSError(EFBIG) }
        guard let path = inodes.path(of: file.ino), let entry = view[path] else {
            files[fh]!.dirty = false
            return nil
        }
        switch entry.kind {
        case .directory:
            files[fh]!.dirty = false
            return nil
        case .scratch:
            // The key was renamed onto a scratch name while this handle was open.
            entry.scratch?.bytes = file.buffer
            entry.scratch?.mtimeMs = nowMs()
            files[fh]!.dirty = false
            return nil
        case .key:
            guard let key = key(path) else {
                files[fh]!.dirty = false
                return nil
            }
            if file.buffer.count > ctx.maxValueBytes {
                files[fh]!.poisoned = true
                throw FSError(EFBIG)
            }
            committing.insert(path)
            return PendingCommit(fh: fh, path: path, key: key, bytes: file.buffer)
        }
    }

    /// Shows the record a `PendingCommit` minted (or records its failure). Every other change of
    /// names and handles waits for the mint (`MountCore.mutation`), so path and handle are as
    /// `prepareCommit` left them; the follower compares the path again. Returns whether it must
    /// be woken for that: when it passed over the path during the mint (a change from elsewhere
    /// may be waiting), or the save failed. A save that succeeded unobserved needs no wake-up: its
    /// own change reaches the follower quietly (`ChangeInbox.add`) and finds the view as shown here.
    mutating func finishCommit(_ pending: PendingCommit, _ result: Result<Record, FSError>) throws(FSError) -> Bool {
        committing.remove(pending.path)
        pendingReconciles.insert(pending.path)
        let skipped = skippedWhileCommitting.remove(pending.path) != nil
        switch result {
        case .success(let record):
            truth.apply(record)
            showCommitted(pending.path, record)
            files[pending.fh]?.dirty = false
            return skipped
        case .failure(let error):
            if error.code == EFBIG { files[pending.fh]?.poisoned = true }
            throw error
        }
    }

    /// The stored record of a key, for snapshots and for renames that copy a value.
    func storedRecord(_ key: Key) throws(FSError) -> Record? {
        do {
            return try ctx.node.store.record(key)
        } catch {
            ctx.logger.error("store read failed", metadata: ["key": "\(key)", "error": "\(error)"])
            throw FSError(EIO)
        }
    }

    /// The newest stored value at `path`, from the value cache when it holds it; nil when the key
    /// is gone or a tombstone.
    func currentValue(_ path: String) throws(FSError) -> ValueCache.Value? {
        switch ctx.values.lookup(path) {
        case .hit(let value):
            return value
        case .miss(let ticket):
            guard let key = key(path), let record = try storedRecord(key), record.kind == .value else { return nil }
            let value = ValueCache.Value(version: record.version, bytes: record.value)
            ctx.values.insert(path, value, ticket: ticket)
            return value
        }
    }

    /// The committed bytes of the key shown at `path` (empty while uncommitted or gone).
    func committedValue(_ path: String) throws(FSError) -> [UInt8] {
        guard view[path]?.shown != nil else { return [] }
        return try currentValue(path)?.bytes ?? []
    }
}
