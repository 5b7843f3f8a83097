import KVGossipCore

/// Which version of each key the kernel may read straight from a backing file, without asking the
/// mount (FUSE passthrough, Docs/filesystem.md §Reading). Pure bookkeeping: the files themselves
/// are made and dropped by `FusePassthrough`, outside the state lock.
///
/// The kernel's rule shapes this table: while any handle of an inode is open in passthrough, every
/// further open of that inode must be a passthrough open naming the same backing file (any other
/// open fails with EIO), even a writer's. Such an open may add direct I/O, which sends its reads
/// and writes to the mount as before. So each inode has at most one backing, of one version; a
/// reader of another version, a writer or a delivery opened meanwhile names that backing with
/// direct I/O (`alongside`), and the backing is replaced only once no handle names it.
struct PassthroughBackings {
    struct Backing {
        let version: RecordVersion
        let id: Int32
        let bytes: Int
        /// Handles opened in passthrough on this backing and not released yet. The kernel lets go
        /// of a handle before it sends RELEASE, so this count is never below the kernel's.
        var opens = 0
        var lastUsed: UInt64 = 0
        /// A handle that may map it shared and writable (opened for reading and writing) named it:
        /// its bytes may no longer be the version's, so no reader opened later reads from it.
        var tainted = false
    }

    /// What an open of `version` should do.
    enum Decision: Equatable {
        /// Reply with this backing.
        case use(Int32)
        /// No backing of this version yet and nothing stands in the way: make one (outside the lock)
        /// and `adopt` it.
        case make
        /// A backing of another version is open: direct I/O, naming that backing.
        case alongside(Int32)
    }

    private(set) var byInode: [UInt64: Backing] = [:]
    /// Backing ids no longer handed out, to close outside the lock (`FusePassthrough.close`).
    private(set) var toClose: [Int32] = []
    /// Bytes of backings no handle holds open; past `idleBudgetBytes` or `idleBudgetCount` the
    /// least recently opened go.
    private(set) var idleBytes = 0
    private var idleCount = 0
    private var clock: UInt64 = 0
    let idleBudgetBytes: Int
    let idleBudgetCount: Int

    init(idleBudgetBytes: Int = 32 << 20, idleBudgetCount: Int = 4096) {
        self.idleBudgetBytes = idleBudgetBytes
        self.idleBudgetCount = idleBudgetCount
    }

    func decide(_ ino: UInt64, version: RecordVersion) -> Decision {
        guard let backing = byInode[ino] else { return .make }
        if backing.version == version && !backing.tainted { return .use(backing.id) }
        return backing.opens > 0 ? .alongside(backing.id) : .make
    }

    /// A handle opened for reading and writing names the backing of `ino`. The kernel maps a
    /// passthrough handle's file from its backing even with direct I/O, and a memfd's seals do not
    /// hold through that mapping, so a shared writable mapping would write into the backing: readers
    /// holding it may see those bytes (as on a local disk), but none opened later will.
    mutating func taint(_ ino: UInt64) {
        byInode[ino]?.tainted = true
    }

    /// The backing every open of `ino` must name while handles of it are open.
    func openBacking(_ ino: UInt64) -> Int32? {
        guard let backing = byInode[ino], backing.opens > 0 else { return nil }
        return backing.id
    }

    func version(of ino: UInt64) -> RecordVersion? { byInode[ino]?.version }

    /// Counts an open handed backing `id` (from `decide`'s `.use`).
    mutating func opened(_ ino: UInt64) {
        guard var backing = byInode[ino] else { return }
        if backing.opens == 0 { leaveIdle(backing) }
        backing.opens += 1
        clock += 1
        backing.lastUsed = clock
        byInode[ino] = backing
    }

    /// Files a backing made for `version`, counting one open on it when `opening`: `.use` with the
    /// id the open reads from, or `.alongside` when another version's backing, open meanwhile,
    /// wins (the open names it with direct I/O). Another open may have filed one of the same
    /// version meanwhile: it is used instead. `id` is closed whenever it is not filed.
    mutating func adopt(_ ino: UInt64, version: RecordVersion, id: Int32, bytes: Int, opening: Bool = true) -> Decision {
        if let existing = byInode[ino] {
            let same = existing.version == version && !existing.tainted
            if same || existing.opens > 0 {
                toClose.append(id)
                if opening { opened(ino) }
                return same ? .use(existing.id) : .alongside(existing.id)
            }
            drop(ino)
        }
        clock += 1
        byInode[ino] = Backing(version: version, id: id, bytes: bytes, opens: opening ? 1 : 0, lastUsed: clock)
        if !opening {
            idleBytes += bytes
            idleCount += 1
            trim()
        }
        return .use(id)
    }

    /// A passthrough handle of `ino` was released.
    mutating func released(_ ino: UInt64) {
        guard var backing = byInode[ino], backing.opens > 0 else { return }
        backing.opens -= 1
        byInode[ino] = backing
        if backing.opens == 0 {
            idleBytes += backing.bytes
            idleCount += 1
            trim()
        }
    }

    /// Takes the ids to close; the caller closes them after releasing the lock.
    mutating func takeClosable() -> [Int32] {
        defer { toClose = [] }
        return toClose
    }

    private mutating func drop(_ ino: UInt64) {
        guard let backing = byInode.removeValue(forKey: ino) else { return }
        if backing.opens == 0 { leaveIdle(backing) }
        toClose.append(backing.id)
    }

    private mutating func leaveIdle(_ backing: Backing) {
        idleBytes -= backing.bytes
        idleCount -= 1
    }

    /// Drops the least recently opened idle backings until both budgets hold, down to three
    /// quarters of them, so a stream of new keys does not sort the table at every release.
    private mutating func trim() {
        guard idleBytes > idleBudgetBytes || idleCount > idleBudgetCount else { return }
        let idle = byInode.filter { $0.value.opens == 0 }.sorted { $0.value.lastUsed < $1.value.lastUsed }
        for (ino, _) in idle {
            if idleBytes <= idleBudgetBytes * 3 / 4 && idleCount <= idleBudgetCount * 3 / 4 { break }
            drop(ino)
        }
    }
}
