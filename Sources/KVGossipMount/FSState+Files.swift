import Glibc
import KVGossipCore

/// What OPEN and CREATE tell the kernel about caching for one handle.
///
/// Readers of a key use the page cache when it can only hold the version they opened (see
/// `openReader`); writers and the follower's deliveries use direct I/O, so their buffers never
/// reach the cache. Scratch files share one content, like tmpfs files, and use the page cache.
struct OpenOut: Sendable {
    var fh: UInt64
    var keepCache = false
    /// Handles that never commit (readers, the follower's deliveries) skip FLUSH, saving one round
    /// trip per `cat` and per replayed write (a FLUSH would also wait for a save being minted).
    var noFlush = false
    var directIO = false
    /// Reply with FUSE passthrough to this backing (`FusePassthrough`): the kernel reads the
    /// handle's bytes from it.
    var backing: Int32? = nil
    /// No backing of the reader's version exists yet: the handler makes one outside the lock and
    /// files it (`adoptBacking`); until then, and if that fails, the handle is a direct-I/O reader.
    var backingWanted: BackingRequest? = nil
}

/// The bytes of one version a reader's open wants a passthrough backing of.
struct BackingRequest: Sendable {
    let ino: UInt64
    let version: RecordVersion
    let bytes: [UInt8]
}

/// The fields of SETATTR the mount acts on.
struct SetAttrRequest: Sendable {
    var size: Int?
    var mode: UInt32?
    var touchesTimes = false
}

extension FSState {
    // MARK: open / create

    /// `passthrough`: the session can give readers backing files (`FusePassthrough.active`).
    mutating func open(_ ino: UInt64, flags: Int32, isSelf: Bool, passthrough: Bool = false) throws(FSError) -> OpenOut {
        let path = try path(ino)
        let entry = try entry(path)
        let writing = flags & O_ACCMODE != O_RDONLY
        let truncating = writing && flags & O_TRUNC != 0
        let appending = flags & O_APPEND != 0
        switch entry.kind {
        case .directory:
            throw FSError(EISDIR)
        case .scratch:
            let data = entry.scratch!
            if truncating {
                data.bytes = []
                data.mtimeMs = nowMs()
            }
            var file = OpenFile(ino: ino, kind: .scratch(data))
            file.append = appending
            // A key renamed onto a scratch name keeps its inode, which readers may still hold in
            // passthrough: the kernel then takes only opens naming their backing.
            if backings.openBacking(ino) != nil {
                return passthroughRule(OpenOut(fh: newHandle(file), noFlush: !writing, directIO: true), ino, mayMapWritable: flags & O_ACCMODE == O_RDWR)
            }
            return OpenOut(fh: newHandle(file), keepCache: true, noFlush: !writing)
        case .key:
            if writing && isSelf {
                showDelivery(at: path)
                var file = OpenFile(ino: ino, kind: .delivery)
                file.buffer = truncating ? [] : try committedValue(path)
                return passthroughRule(OpenOut(fh: newHandle(file), noFlush: true, directIO: true), ino)
            }
            if !writing {
                return try openReader(ino, path: path, entry: entry, passthrough: passthrough)
            }
            if !entry.isUncommittedKey, !isSelf, let key = key(path), !ctx.node.mayWrite(key) {
                // EACCES at open() when this node holds no grant for the key (Docs/filesystem.md §Errors).
                throw FSError(EACCES)
            }
            var file = OpenFile(ino: ino, kind: .writer)
            file.buffer = truncating ? [] : try committedValue(path)
            file.dirty = truncating
            file.append = appending
            return passthroughRule(OpenOut(fh: newHandle(file), directIO: true), ino, mayMapWritable: flags & O_ACCMODE == O_RDWR)
        }
    }

    /// How an open of a key's inode (or of a scratch name it was renamed to) is answered, for the
    /// kernel's rule that an inode's handles are either all plain or all passthrough naming one
    /// backing (`PassthroughBackings`). The kernel applies each reply in the opening process, in an
    /// order the mount does not see, so the mount keeps that rule over every handle it has
    /// answered and not seen released:
    /// - while handles naming a backing are open, every open names it too (with direct I/O, so its
    ///   bytes still come from the mount, unless it reads that backing's very version);
    /// - while plain handles are open, a reader stays plain (direct I/O);
    /// - only an inode with no handle open gets a reader its backing (`reading`), made if need be.
    /// `out` is a direct-I/O reply whose handle `newHandle` has just filed. `mayMapWritable`: the
    /// handle is open for reading and writing (`PassthroughBackings.taint`).
    private mutating func passthroughRule(_ out: OpenOut, _ ino: UInt64, reading: BackingRequest? = nil, mayMapWritable: Bool = false) -> OpenOut {
        var out = out
        if let id = backings.openBacking(ino) {
            backings.opened(ino)
            files[out.fh]!.passthrough = true
            out.backing = id
            if mayMapWritable { backings.taint(ino) }
            if let reading, backings.decide(ino, version: reading.version) == .use(id) { out.directIO = false }
            return out
        }
        guard let reading, handlesPerInode[ino] == 1 else { return out }
        switch backings.decide(ino, version: reading.version) {
        case .use(let id):
            backings.opened(ino)
            files[out.fh]!.passthrough = true
            out.backing = id
            out.directIO = false
        case .make:
            out.backingWanted = reading
        case .alongside:
            break  // not with no backing open
        }
        return out
    }

    /// A reader gets the value stored now: one consistent version for the life of the handle.
    ///
    /// The kernel's page cache and file size are shared by every open of an inode, so a reader uses
    /// them only when nothing else can change them under it: the attributes last shown are of its
    /// version (else a size cached before the change could clip the read), no writer or delivery
    /// is open on the inode (its truncate and writes move the size), and no cached reader of another
    /// version is open (its reads would refill the pages with its bytes). Otherwise: direct I/O.
    /// The open keeps the cached pages only if they were filled for that same version; otherwise the
    /// kernel drops them at this open. A reader of an older version that refills pages anyway (it
    /// was open before the change) taints the cache (see `read`), and the follower drops them.
    ///
    /// In the default mode a reader's bytes come from its own snapshot: through a passthrough
    /// backing of its version when the session has them (reads then cost no request), else by
    /// direct I/O. Both keep the version whatever happens to the file meanwhile.
    private mutating func openReader(_ ino: UInt64, path: String, entry: ViewEntry, passthrough: Bool) throws(FSError) -> OpenOut {
        guard let shown = entry.shown, let value = try currentValue(path) else {
            let file = OpenFile(ino: ino, kind: .reader([], version: nil, cached: false))
            return passthroughRule(OpenOut(fh: newHandle(file), noFlush: true, directIO: true), ino)
        }
        if !ctx.readerPageCache {
            let file = OpenFile(ino: ino, kind: .reader(value.bytes, version: value.version, cached: false))
            let wanted = passthrough ? BackingRequest(ino: ino, version: value.version, bytes: value.bytes) : nil
            return passthroughRule(OpenOut(fh: newHandle(file), noFlush: true, directIO: true), ino, reading: wanted)
        }
        guard ctx.readerPageCache, value.version == shown.version, !pageCacheContended(ino, by: value.version) else {
            let file = OpenFile(ino: ino, kind: .reader(value.bytes, version: value.version, cached: false))
            return OpenOut(fh: newHandle(file), noFlush: true, directIO: true)
        }
        let keep = pageCacheVersions[ino] == value.version
        pageCacheVersions[ino] = value.version
        let file = OpenFile(ino: ino, kind: .reader(value.bytes, version: value.version, cached: true))
        return OpenOut(fh: newHandle(file), keepCache: keep, noFlush: true)
    }

    /// Another open handle on the inode could put other bytes or another size into its cache.
    private func pageCacheContended(_ ino: UInt64, by version: RecordVersion) -> Bool {
        files.values.contains { file in
            guard file.ino == ino else { return false }
            switch file.kind {
            case .reader(_, let other, let cached): return cached && other != version
            case .writer, .delivery: return true
            case .scratch: return false
            }
        }
    }

    /// The follower's own write shows the version it is delivering from the moment the kernel
    /// sees the file change, so a reader woken by the event finds the new attributes.
    ///
    /// A save through the mount may have shown a newer record while the delivery was on its way to
    /// the helper; the view keeps that one. Showing the older version again put the file back to
    /// the old size, and the follower, finding the same write to do twice, stopped until its next
    /// wake-up (up to a second later) as if it had made no progress.
    mutating func showDelivery(at path: String) {
        guard let shown = deliveries.removeValue(forKey: path) ?? truth.liveEntry(path) else { return }
        if let current = view[path]?.shown, current.version > shown.version { return }
        view.update(path) {
            $0.shown = shown
            $0.mtimeMs = shown.mtimeMs
        }
    }

    mutating func create(_ parent: UInt64, _ name: String, mode: UInt32, flags: Int32, isSelf: Bool) throws(FSError) -> (Attr, OpenOut) {
        let path = try childPath(parent, name)
        if view[path] != nil {
            // The name appeared after the kernel's lookup (a delivery raced this create).
            if flags & O_EXCL != 0 { throw FSError(EEXIST) }
            let ino = inodes.ino(for: path, lookup: true)
            let out = try open(ino, flags: flags, isSelf: isSelf)
            return (attr(path, ino: ino)!, out)
        }
        let now = nowMs()
        let kind: OpenFile.Kind
        var createdHere = false
        switch try ctx.scratch.classifyFile(path) {
        case .scratch:
            let data = ScratchData(mode: mode & 0o7777, mtimeMs: now)
            guard view.insert(path, .scratchFile(data), nowMs: now) else { throw FSError(ENOENT) }
            kind = .scratch(data)
        case .key(let key):
            if isSelf {
                let shown = deliveries.removeValue(forKey: path) ?? truth.liveEntry(path)
                guard view.insert(path, .key(shown, mtimeMs: now), nowMs: now) else { throw FSError(ENOENT) }
                kind = .delivery
            } else {
                guard ctx.node.mayWrite(key) else { throw FSError(EACCES) }
                guard view.insert(path, .key(nil, mtimeMs: now), nowMs: now) else { throw FSError(ENOENT) }
                kind = .writer
                createdHere = true
            }
        }
        let ino = inodes.ino(for: path, lookup: true)
        var file = OpenFile(ino: ino, kind: kind)
        file.append = flags & O_APPEND != 0
        // A new file is a new value even if nothing is written (`touch new`).
        file.dirty = createdHere
        file.createdHere = createdHere
        let isScratch = if case .scratch = kind { true } else { false }
        let isDelivery = if case .delivery = kind { true } else { false }
        return (attr(path, ino: ino)!, OpenOut(fh: newHandle(file), keepCache: isScratch, noFlush: isDelivery, directIO: !isScratch))
    }

    // MARK: read / write

    /// The bytes at `offset`, and whether the follower must drop the inode's cached pages: a
    /// cached reader of a version other than the cache's just put its bytes there.
    /// The bytes come back as a slice of the handle's own buffer, not a copy: a read of a large
    /// value copied it under the state lock, and a fresh megabyte from malloc is page faults too.
    mutating func read(_ fh: UInt64, size: Int, offset: Int) throws(FSError) -> (bytes: ArraySlice<UInt8>, tainted: Bool) {
        guard let file = files[fh] else { throw FSError(EBADF) }
        var tainted = false
        if case .reader(_, let version?, cached: true) = file.kind, pageCacheVersions[file.ino] != version {
            pageCacheVersions[file.ino] = nil
            pendingPageInvalidations.append(file.ino)
            tainted = true
        }
        return (slice(file.readable, size: size, offset: offset), tainted)
    }

    private func slice(_ bytes: [UInt8], size: Int, offset: Int) -> ArraySlice<UInt8> {
        guard offset < bytes.count else { return [] }
        return bytes[offset..<min(bytes.count, offset + size)]
    }

    mutating func write(_ fh: UInt64, _ chunk: [UInt8], offset: Int) throws(FSError) -> Int {
        guard files[fh] != nil else { throw FSError(EBADF) }
        let limit = ctx.maxValueBytes, scratchLimit = ctx.maxScratchBytes
        try modify(&files[fh]!) { (file: inout OpenFile) throws(FSError) in
            switch file.kind {
            case .reader:
                throw FSError(EBADF)
            case .scratch(let data):
                let start = file.append ? data.bytes.count : offset
                // Compared without adding: the kernel may pass any 63-bit offset.
                guard start <= scratchLimit - chunk.count else { throw FSError(EFBIG) }
                splice(chunk, into: &data.bytes, at: start)
                data.mtimeMs = nowMs()
            case .delivery:
                let start = file.append ? file.buffer.count : offset
                guard start <= scratchLimit - chunk.count else { throw FSError(EFBIG) }
                splice(chunk, into: &file.buffer, at: start)
            case .writer:
                if file.poisoned { throw FSError(EFBIG) }
                let start = file.append ? file.buffer.count : offset
                guard start <= limit - chunk.count else {
                    file.poisoned = true
                    throw FSError(EFBIG)
                }
                splice(chunk, into: &file.buffer, at: start)
                file.wrote = true
                file.dirty = true
            }
        }
        return chunk.count
    }

    // MARK: flush / fsync / release: the commit policy (Docs/filesystem.md §Tool request sequences)

    /// Commits if this handle wrote or ftruncated. A FLUSH without writes is bash's dup2 before the
    /// write, and committing there would mint an empty value first. The mint itself happens outside
    /// the lock (`prepareCommit`).
    mutating func flush(_ fh: UInt64) throws(FSError) -> PendingCommit? {
        guard let file = files[fh], file.isWriter else { return nil }
        if file.poisoned { throw FSError(EFBIG) }
        return file.wrote && file.dirty ? try prepareCommit(fh) : nil
    }

    mutating func fsync(_ fh: UInt64) throws(FSError) -> PendingCommit? {
        guard let file = files[fh], file.isWriter else { return nil }
        if file.poisoned { throw FSError(EFBIG) }
        return try prepareCommit(fh)
    }

    /// RELEASE of a handle that cannot commit (a reader, a scratch file, a delivery): drops it and
    /// returns the passthrough backings to close (usually none), leaving the follower nothing to
    /// do. A writer's handle is left for `prepareRelease` and `release` (nil).
    mutating func releaseIfNotWriter(_ fh: UInt64) -> [Int32]? {
        guard let file = files[fh] else { return [] }
        if file.isWriter { return nil }
        dropHandle(fh)
        return file.passthrough ? backings.takeClosable() : []
    }

    /// Drops a handle the kernel never received (its OPEN or CREATE was interrupted) without
    /// committing; returns the passthrough backings to close.
    mutating func abandon(_ fh: UInt64) -> [Int32] {
        if let close = releaseIfNotWriter(fh) { return close }
        _ = release(fh, committed: false)
        return backings.takeClosable()
    }

    /// Files a backing the handler made for a reader's open (`OpenOut.backingWanted`) and returns
    /// the id the reply names, or nil to reply as planned (plain direct I/O); and the backings to
    /// close. The reader's plain handle was open meanwhile, so no handle can have been given a
    /// backing since; but other plain handles may have opened, and then the reader stays plain
    /// (its backing is filed for the next reader).
    mutating func adoptBacking(_ fh: UInt64, _ request: BackingRequest, id: Int32) -> (use: Int32?, close: [Int32]) {
        guard files[fh] != nil, backings.openBacking(request.ino) == nil else { return (nil, [id]) }
        let alone = handlesPerInode[request.ino] == 1
        let filed = backings.adopt(request.ino, version: request.version, id: id, bytes: request.bytes.count, opening: alone)
        guard alone, case .use(let use) = filed else { return (nil, backings.takeClosable()) }
        files[fh]!.passthrough = true
        return (use, backings.takeClosable())
    }

    /// What RELEASE commits that FLUSH did not (`: > f`, `touch new`). RELEASE has no caller to
    /// report to, so a failure is only logged (`MountCore.release`).
    mutating func prepareRelease(_ fh: UInt64) throws(FSError) -> PendingCommit? {
        guard let file = files[fh], file.isWriter, file.dirty, !file.poisoned else { return nil }
        return try prepareCommit(fh)
    }

    /// Drops the handle after `prepareRelease`'s commit (if any) was shown. A created file that
    /// never committed goes away. Returns whether that left the follower something to do.
    /// The passthrough backings to close are left in `backings` for the handler to take.
    mutating func release(_ fh: UInt64, committed: Bool) -> Bool {
        guard let file = dropHandle(fh) else { return false }
        if committed { pendingAttributeInvalidations.append(file.ino) }
        guard file.createdHere, let path = inodes.path(of: file.ino), view[path]?.isUncommittedKey == true,
            !files.values.contains(where: { $0.ino == file.ino })
        else { return committed }
        let parent = ViewPath.parent(path)
        removeName(path)
        if let parentIno = inodes.existing(parent) {
            pendingEntryInvalidations.append((parentIno, ViewPath.name(path)))
        }
        resolveHidden(path)
        pendingReconciles.insert(path)
        return true
    }

    // MARK: setattr

    mutating func setattr(_ ino: UInt64, _ request: SetAttrRequest, fh: UInt64?, isSelf: Bool) throws(FSError) -> Attr {
        if let size = request.size {
            if let fh, files[fh] != nil {
                try truncate(fh, to: size)
            } else {
                try truncate(path: try path(ino), to: size, isSelf: isSelf)
            }
        }
        if let path = inodes.path(of: ino), let data = view[path]?.scratch {
            if let mode = request.mode { data.mode = mode & 0o7777 }
            if request.touchesTimes { data.mtimeMs = nowMs() }
        }
        // Mode, owner and times of keys follow from grants and records; changing them is accepted
        // and ignored, because editors and `sed -i` set them after every save.
        return try getattr(ino, fh: fh)
    }

    /// ftruncate: only the handle's buffer changes (one record at commit).
    private mutating func truncate(_ fh: UInt64, to size: Int) throws(FSError) {
        let limit = ctx.maxValueBytes, scratchLimit = ctx.maxScratchBytes
        try modify(&files[fh]!) { (file: inout OpenFile) throws(FSError) in
            switch file.kind {
            case .reader:
                throw FSError(EBADF)
            case .scratch(let data):
                guard size <= scratchLimit else { throw FSError(EFBIG) }
                resize(&data.bytes, to: size)
                data.mtimeMs = nowMs()
            case .delivery:
                resize(&file.buffer, to: size)
            case .writer:
                if file.poisoned { throw FSError(EFBIG) }
                guard size <= limit else { throw FSError(EFBIG) }
                resize(&file.buffer, to: size)
                file.wrote = true
                file.dirty = true
            }
        }
    }

    /// truncate(2) by path, with no handle: mints directly.
    private mutating func truncate(path: String, to size: Int, isSelf: Bool) throws(FSError) {
        let entry = try entry(path)
        switch entry.kind {
        case .directory:
            throw FSError(EISDIR)
        case .scratch:
            guard size <= ctx.maxScratchBytes else { throw FSError(EFBIG) }
            resize(&entry.scratch!.bytes, to: size)
            entry.scratch!.mtimeMs = nowMs()
        case .key:
            guard !isSelf, !entry.isUncommittedKey, let key = key(path) else { return }
            guard ctx.node.mayWrite(key) else { throw FSError(EACCES) }
            guard size <= ctx.maxValueBytes else { throw FSError(EFBIG) }
            var value = try committedValue(path)
            guard value.count != size else { return }
            resize(&value, to: size)
            showCommitted(path, try mint(key, value))
        }
    }
}

/// Applies a throwing mutation in place (no copy of a large buffer per write).
func modify<T>(_ value: inout T, _ body: (inout T) throws(FSError) -> Void) throws(FSError) {
    try body(&value)
}
