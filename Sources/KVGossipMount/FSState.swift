import Glibc
import KVGossipCore
import KVGossipNode
import KVGossipStore
import Logging

/// What the state needs from outside: the node, the name rules, the owner, and limits.
struct MountContext: Sendable {
    let node: Node
    let scratch: ScratchNames
    let uid: UInt32
    let gid: UInt32
    let logger: Logger
    /// How long a key renamed onto a scratch name stays hidden before its tombstone is minted, if
    /// nothing re-creates it (see HiddenKeys.swift).
    var hiddenGraceMs: UInt64 = 3000
    /// Scratch files live in memory; this bounds each one.
    var maxScratchBytes = 64 << 20
    /// Recently read values, kept current by the store's commit observer.
    let values: ValueCache
    /// Readers may use the kernel's page cache (MountOptions.readerPageCache).
    var readerPageCache = false

    var maxValueBytes: Int { node.store.validator.limits.maxValueBytes }
}

/// Attributes as the mount computes them; FuseReplies turns them into a `struct stat`.
struct Attr: Sendable {
    var ino: UInt64
    var mode: UInt32
    var nlink: UInt32
    var size: Int
    var mtimeMs: UInt64
    var uid: UInt32
    var gid: UInt32
    /// About to change (a save being minted): the kernel must not cache these attributes.
    var volatile = false
}

/// Everything the FUSE handlers share, guarded by one mutex in `MountCore`. Handlers copy their C
/// arguments first, run one state operation under the lock, and reply after releasing it.
struct FSState {
    let ctx: MountContext
    var view: ViewTree
    var inodes = InodeTable()
    var truth: TruthIndex
    var files: [UInt64: OpenFile] = [:]
    var listings: [UInt64: DirectoryListing] = [:]
    var nextHandle: UInt64 = 1
    /// Keys renamed onto a scratch name, waiting to be re-created or tombstoned.
    var hidden: [String: HiddenKey] = [:]
    /// What the follower is about to write at a path: the self-request shows exactly this version.
    var deliveries: [String: TruthEntry] = [:]
    /// Kernel name caches to drop, for changes the kernel did not make itself. Sent by the
    /// follower: a notification from inside a handler can deadlock the kernel.
    var pendingEntryInvalidations: [(parent: UInt64, name: String)] = []
    /// Cached attributes to drop: a commit at RELEASE changed the record time after the kernel's
    /// last look, and a scratch file renamed onto a key keeps the scratch file's cached mode.
    var pendingAttributeInvalidations: [UInt64] = []
    /// Keys the follower should compare with the truth again (a local edit skipped a delivery).
    var pendingReconciles: Set<String> = []
    /// The one version whose bytes the kernel's page cache may hold for an inode; absent when it
    /// may hold another or a mix (see `openReader`).
    var pageCacheVersions: [UInt64: RecordVersion] = [:]
    /// Inodes whose cached pages to drop: a reader of an older version refilled them.
    var pendingPageInvalidations: [UInt64] = []
    /// Keys whose save is being minted outside the lock (`prepareCommit`): their attributes are
    /// answered uncached, and the follower leaves them alone until the mint is shown.
    var committing: Set<String> = []
    /// Paths the follower passed over because they were committing: their save's end must wake it
    /// (a change from elsewhere may have arrived meanwhile). Other saves wake nobody.
    var skippedWhileCommitting: Set<String> = []
    /// The backing file of each key readers may be given in passthrough (default mode).
    var backings = PassthroughBackings()
    /// Open handles per inode, of every kind (`newHandle`, `dropHandle`): with `backings`' count of
    /// those that name a backing, it tells whether any plain handle is open.
    var handlesPerInode: [UInt64: Int] = [:]

    init(ctx: MountContext) {
        self.ctx = ctx
        view = ViewTree(nowMs: nowMs())
        truth = TruthIndex(scratch: ctx.scratch)
    }

    /// Builds the view from the store's records: every live key as a file, its prefixes as
    /// directories; a key that is also a prefix of another key is shown as the directory. The
    /// records are read a page at a time and only what the truth keeps of each stays, so a large
    /// tree never sits in memory as decoded records. Pages are separate reads: a commit between two
    /// is also in the change stream the caller subscribed to first, and the truth orders both.
    /// Returns the number of records read.
    mutating func load(from store: Store, pageRows: Int = 10_000) throws -> Int {
        var cursor: String?
        var read = 0
        // Counting costs a pass over the smallest index (0.1 s at a million keys); growing the two
        // tables instead rehashed every path at each doubling, a seventh of the start.
        let stored = try store.recordCount
        truth.reserve(stored)
        view.reserve(stored + 1)
        repeat {
            cursor = try store.scanRecords(under: nil, after: cursor, rowLimit: pageRows) { _, _, decode in
                truth.load(try decode())
                read += 1
                return .next
            }
        } while cursor != nil
        truth.finishLoading()
        let now = nowMs()
        for (path, entry) in truth.entries where entry.live {
            let shown: ViewEntry = truth.hasDescendants(path) ? .directory(local: false, mtimeMs: now) : .key(entry, mtimeMs: now)
            // Most parents exist already (a sibling made them): only a missing one costs a walk up.
            // An insert also fails for a path shown already (a directory made for a key below it).
            guard !view.insert(path, shown, nowMs: now), view[path] == nil else { continue }
            for dir in ViewPath.ancestors(path) where view[dir] == nil {
                view.insert(dir, .directory(local: false, mtimeMs: now), nowMs: now)
            }
            view.insert(path, shown, nowMs: now)
        }
        return read
    }

    // MARK: Lookups shared by the handlers

    func path(_ ino: UInt64) throws(FSError) -> String {
        guard let path = inodes.path(of: ino) else { throw FSError(ENOENT) }
        return path
    }

    func childPath(_ parent: UInt64, _ name: String) throws(FSError) -> String {
        let dir = try path(parent)
        guard view[dir]?.isDirectory == true else { throw FSError(ENOTDIR) }
        return ViewPath.child(dir, name)
    }

    func entry(_ path: String) throws(FSError) -> ViewEntry {
        guard let entry = view[path] else { throw FSError(ENOENT) }
        return entry
    }

    func key(_ path: String) -> Key? {
        try? Key(path)
    }

    mutating func newHandle(_ file: OpenFile) -> UInt64 {
        let fh = nextHandle
        nextHandle += 1
        files[fh] = file
        handlesPerInode[file.ino, default: 0] += 1
        return fh
    }

    /// Forgets a handle (RELEASE, or an OPEN the caller never got); the one place handles go.
    @discardableResult
    mutating func dropHandle(_ fh: UInt64) -> OpenFile? {
        guard let file = files.removeValue(forKey: fh) else { return nil }
        let left = (handlesPerInode[file.ino] ?? 1) - 1
        handlesPerInode[file.ino] = left > 0 ? left : nil
        if file.passthrough { backings.released(file.ino) }
        return file
    }

    // MARK: Attributes

    func attr(_ path: String, ino: UInt64) -> Attr? {
        guard let entry = view[path] else { return nil }
        var mode: UInt32
        switch entry.kind {
        case .directory:
            mode = S_IFDIR | 0o755
        case .key:
            let writable = entry.isUncommittedKey || (key(path).map(ctx.node.mayWrite) ?? false)
            mode = S_IFREG | (writable ? 0o644 : 0o444)
        case .scratch:
            mode = S_IFREG | ((entry.scratch?.mode ?? 0o644) & 0o7777)
        }
        let mtime = entry.kind == .scratch ? entry.scratch?.mtimeMs ?? entry.mtimeMs : entry.mtimeMs
        return Attr(
            ino: ino, mode: mode, nlink: entry.isDirectory ? 2 : 1, size: entry.size, mtimeMs: mtime,
            uid: ctx.uid, gid: ctx.gid, volatile: committing.contains(path))
    }

    /// GETATTR: through a handle, the size is that handle's bytes (a writer's buffer, as a local
    /// file shows what was written so far; a reader's snapshot).
    func getattr(_ ino: UInt64, fh: UInt64?) throws(FSError) -> Attr {
        let handle = fh.flatMap { files[$0] }
        if let path = inodes.path(of: ino), var attr = attr(path, ino: ino) {
            if let handle, attr.mode & S_IFMT == S_IFREG {
                attr.size = handle.readable.count
            }
            return attr
        }
        // An unlinked (or renamed-over) file that is still open answers from its handle; `fstat`
        // sends no handle, so any handle of the inode will do (`cat` of a descriptor held across
        // an atomic replace used to fail with ENOENT).
        guard let handle = handle ?? files.values.first(where: { $0.ino == ino }) else { throw FSError(ENOENT) }
        return Attr(ino: ino, mode: S_IFREG | 0o644, nlink: 0, size: handle.readable.count, mtimeMs: nowMs(), uid: ctx.uid, gid: ctx.gid)
    }
}

/// Wall-clock milliseconds, for local directories and scratch files (keys carry their record time).
func nowMs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
}
