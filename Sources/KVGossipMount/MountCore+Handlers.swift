import CFuse3
import Glibc

/// The request handlers: copy the C arguments, run one state operation, reply. C strings and
/// buffers are copied before taking the lock (Docs/filesystem.md §Swift and FUSE threads).
extension MountCore {
    func lookup(_ req: fuse_req_t?, _ parent: fuse_ino_t, _ name: String) {
        run(req, { st throws(FSError) in try st.lookup(parent, name) }, reply: { FuseReply.entry(req, $0) })
    }

    func forget(_ ino: fuse_ino_t, _ count: UInt64) {
        state.withLock { $0.forget(ino, count: count) }
    }

    func getattr(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ fh: UInt64?) {
        run(req, { st throws(FSError) in try st.getattr(ino, fh: fh) }, reply: { FuseReply.attr(req, $0) })
    }

    func setattr(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ attr: Glibc.stat, _ toSet: Int32, _ fh: UInt64?) {
        var request = SetAttrRequest()
        if toSet & FUSE_SET_ATTR_SIZE != 0 { request.size = max(0, attr.st_size) }
        if toSet & FUSE_SET_ATTR_MODE != 0 { request.mode = attr.st_mode }
        request.touchesTimes = toSet & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW) != 0
        let isSelf = isSelf(req)
        mutate(req, { st throws(FSError) in try st.setattr(ino, request, fh: fh, isSelf: isSelf) }, reply: { FuseReply.attr(req, $0) })
    }

    func mkdir(_ req: fuse_req_t?, _ parent: fuse_ino_t, _ name: String) {
        let isSelf = isSelf(req)
        mutate(req, { st throws(FSError) in try st.mkdir(parent, name, isSelf: isSelf) }, reply: { FuseReply.entry(req, $0) })
    }

    func unlink(_ req: fuse_req_t?, _ parent: fuse_ino_t, _ name: String) {
        let isSelf = isSelf(req)
        mutate(req, { st throws(FSError) in try st.unlink(parent, name, isSelf: isSelf) }, reply: { FuseReply.error(req, 0) })
        if !isSelf { followerWake.signal() }
    }

    func rmdir(_ req: fuse_req_t?, _ parent: fuse_ino_t, _ name: String) {
        let isSelf = isSelf(req)
        mutate(req, { st throws(FSError) in try st.rmdir(parent, name, isSelf: isSelf) }, reply: { FuseReply.error(req, 0) })
        if !isSelf { followerWake.signal() }
    }

    func rename(_ req: fuse_req_t?, _ parent: fuse_ino_t, _ name: String, _ newParent: fuse_ino_t, _ newName: String, _ flags: UInt32) {
        let isSelf = isSelf(req)
        mutate(req, { st throws(FSError) in try st.rename(parent, name, newParent, newName, flags: flags, isSelf: isSelf) },
            reply: { FuseReply.error(req, 0) })
        followerWake.signal()
    }

    func open(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        let flags = fi?.pointee.flags ?? 0
        let isSelf = isSelf(req)
        let passthrough = self.passthrough.active
        let body: (inout FSState) throws(FSError) -> OpenOut = { st throws(FSError) in
            try st.open(ino, flags: flags, isSelf: isSelf, passthrough: passthrough)
        }
        // A read-only open changes nothing and does not wait for a save being minted.
        if flags & O_ACCMODE == O_RDONLY && flags & O_TRUNC == 0 {
            run(req, body, reply: { replyToOpen(req, fi, $0) })
        } else {
            mutate(req, body, reply: { replyToOpen(req, fi, $0) })
        }
    }

    /// Replies to OPEN, first making the passthrough backing the reader wants (outside the lock:
    /// a memfd, a copy of the value and an ioctl).
    private func replyToOpen(_ req: fuse_req_t?, _ fi: UnsafeMutablePointer<fuse_file_info>?, _ out: OpenOut) {
        if sendOpenReply(req, fi, out) == -ENOENT { abandon(out.fh) }
    }

    /// A handle whose OPEN or CREATE was interrupted: the kernel dropped the request and will never
    /// release the handle, so it goes now, without committing (an `O_TRUNC` that never reached the
    /// caller must not mint an empty value).
    private func abandon(_ fh: UInt64) {
        let close = state.withLock { $0.abandon(fh) }
        if !close.isEmpty { passthrough.close(close) }
    }

    private func sendOpenReply(_ req: fuse_req_t?, _ fi: UnsafeMutablePointer<fuse_file_info>?, _ out: OpenOut) -> Int32 {
        if out.backing != nil { return FuseReply.openPassthrough(req, out) }
        guard let wanted = out.backingWanted else { return FuseReply.open(req, fi, out) }
        switch passthrough.make(wanted.bytes) {
        case .made(let id):
            let (use, close) = state.withLock { $0.adoptBacking(out.fh, wanted, id: id) }
            if !close.isEmpty { passthrough.close(close) }
            if let use {
                var reading = out
                reading.backing = use
                reading.directIO = false
                return FuseReply.openPassthrough(req, reading)
            }
        case .failed(let code, let permanent):
            if permanent {
                ctx.logger.warning("FUSE passthrough refused by the kernel; readers use direct I/O", metadata: ["errno": "\(code)"])
            } else {
                ctx.logger.debug("no passthrough backing for this open", metadata: ["errno": "\(code)"])
            }
        }
        return FuseReply.open(req, fi, out)
    }

    func create(_ req: fuse_req_t?, _ parent: fuse_ino_t, _ name: String, _ mode: mode_t, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        let flags = fi?.pointee.flags ?? 0
        let isSelf = isSelf(req)
        mutate(req, { st throws(FSError) in try st.create(parent, name, mode: mode, flags: flags, isSelf: isSelf) },
            reply: { (attr, out) in
                let sent = out.backing == nil ? FuseReply.create(req, fi, attr, out) : FuseReply.createPassthrough(req, attr, out)
                if sent == -ENOENT { abandon(out.fh) }
            })
    }

    func read(_ req: fuse_req_t?, _ size: Int, _ offset: Int, _ fh: UInt64) {
        readRequests.add(1, ordering: .relaxed)
        run(req, { st throws(FSError) in try st.read(fh, size: size, offset: offset) }, reply: { result in
            FuseReply.bytes(req, result.bytes)
            if result.tainted { followerWake.signal() }
        })
    }

    func write(_ req: fuse_req_t?, _ chunk: [UInt8], _ offset: Int, _ fh: UInt64) {
        mutate(req, { st throws(FSError) in try st.write(fh, chunk, offset: offset) }, reply: { _ = fuse_reply_write(req, $0) })
    }

    func flush(_ req: fuse_req_t?, _ fh: UInt64) {
        save(req) { st throws(FSError) in try st.flush(fh) }
    }

    func fsync(_ req: fuse_req_t?, _ fh: UInt64) {
        save(req) { st throws(FSError) in try st.fsync(fh) }
    }

    /// FLUSH and FSYNC: a possible save, minted outside the state lock.
    private func save(_ req: fuse_req_t?, _ prepare: (inout FSState) throws(FSError) -> FSState.PendingCommit?) {
        let code: Int32 = withMutation {
            do throws(FSError) {
                try commitOutsideLock(prepare)
                return 0
            } catch {
                return error.code
            }
        }
        FuseReply.error(req, code)
    }

    /// A reader's RELEASE only drops its handle (no follower wake-up: nothing changed). A writer's
    /// commits what FLUSH did not; a failure there is only logged, as RELEASE has no caller. The
    /// follower is woken only when the release left it work (`FSState.release`): a writer whose
    /// FLUSH already saved, the usual case, wakes nobody.
    func release(_ req: fuse_req_t?, _ fh: UInt64) {
        if let close = state.withLock({ $0.releaseIfNotWriter(fh) }) {
            FuseReply.error(req, 0)
            if !close.isEmpty { passthrough.close(close) }
            return
        }
        let (followerHasWork, close) = withMutation { () -> (Bool, [Int32]) in
            var committed = false
            do throws(FSError) {
                committed = try commitOutsideLock { st throws(FSError) in try st.prepareRelease(fh) }
            } catch {
                ctx.logger.warning("commit at release failed", metadata: ["errno": "\(error.code)"])
            }
            return state.withLock { st in (st.release(fh, committed: committed), st.backings.takeClosable()) }
        }
        FuseReply.error(req, 0)
        if !close.isEmpty { passthrough.close(close) }
        if followerHasWork { followerWake.signal() }
    }

    func opendir(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        run(req, { st throws(FSError) in try st.openDirectory(ino) }, reply: { fh in
            guard let fi else { return FuseReply.error(req, EIO) }
            fi.pointee.fh = fh
            _ = fuse_reply_open(req, fi)
        })
    }

    func readdir(_ req: fuse_req_t?, _ size: Int, _ offset: Int, _ fh: UInt64) {
        guard let listing = state.withLock({ $0.listings[fh] }) else { return FuseReply.error(req, EBADF) }
        var buffer = [CChar](repeating: 0, count: size)
        var used = 0
        var index = max(0, offset)
        while index < listing.items.count {
            let item = listing.items[index]
            var st = Glibc.stat()
            st.st_ino = __ino_t(item.ino)
            st.st_mode = item.isDirectory ? S_IFDIR : S_IFREG
            let room = size - used
            let needed = buffer.withUnsafeMutableBufferPointer { buf in
                item.name.withCString { fuse_add_direntry(req, buf.baseAddress! + used, room, $0, &st, off_t(index + 1)) }
            }
            if needed > room { break }
            used += needed
            index += 1
        }
        _ = buffer.withUnsafeBufferPointer { fuse_reply_buf(req, $0.baseAddress, used) }
    }

    func releasedir(_ req: fuse_req_t?, _ fh: UInt64) {
        state.withLock { _ = $0.listings.removeValue(forKey: fh) }
        FuseReply.error(req, 0)
    }

    func statfs(_ req: fuse_req_t?) {
        let files = state.withLock { $0.inodes.count }
        var st = statvfs()
        st.f_bsize = 4096
        st.f_frsize = 4096
        st.f_namemax = 255
        st.f_files = fsfilcnt_t(files)
        _ = fuse_reply_statfs(req, &st)
    }

    // MARK: Extended attributes (never ENOSYS, which disables them mount-wide)
    // Docs/filesystem.md §Xattr conventions

    func getxattr(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ name: String, _ size: Int) {
        // `ls` probes security.* and system.* on every entry: answer those without the lock.
        guard Xattr.isOurs(name) else { return FuseReply.error(req, ENODATA) }
        let peers = self.peers
        run(req, { st throws(FSError) in try st.xattrValue(ino, name, peers: peers) },
            reply: { FuseReply.xattr(req, Array($0.utf8), requested: size) })
    }

    func listxattr(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ size: Int) {
        run(req, { st throws(FSError) in try st.xattrNames(ino) }, reply: { names in
            var list: [UInt8] = []
            for name in names {
                list.append(contentsOf: name.fullName.utf8)
                list.append(0)
            }
            FuseReply.xattr(req, list, requested: size)
        })
    }

    func setxattr(_ req: fuse_req_t?, _ name: String) {
        // Ours are derived from records (EPERM); others are not stored here. ENOTSUP makes `sed -i`
        // and vim skip copying ACLs, as on a filesystem without them.
        FuseReply.error(req, Xattr.isOurs(name) ? EPERM : ENOTSUP)
    }

    func removexattr(_ req: fuse_req_t?, _ name: String) {
        FuseReply.error(req, Xattr.isOurs(name) ? EPERM : ENODATA)
    }
}
