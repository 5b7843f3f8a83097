import CFuse3
import Glibc

/// Turning results into replies. Every request gets exactly one reply, error or not.
enum FuseReply {
    /// Long entry and attribute timeouts: every change the kernel did not make itself is either
    /// replayed through the mount (which updates its caches) or invalidated explicitly.
    static let cacheSeconds = 60.0

    static func stat(_ attr: Attr) -> Glibc.stat {
        var st = Glibc.stat()
        st.st_ino = __ino_t(attr.ino)
        st.st_mode = attr.mode
        st.st_nlink = __nlink_t(attr.nlink)
        st.st_uid = attr.uid
        st.st_gid = attr.gid
        st.st_size = attr.size
        st.st_blksize = 4096
        st.st_blocks = (attr.size + 511) / 512
        let time = timespec(tv_sec: Int(attr.mtimeMs / 1000), tv_nsec: Int(attr.mtimeMs % 1000) * 1_000_000)
        st.st_atim = time
        st.st_mtim = time
        st.st_ctim = time
        return st
    }

    static func entryParam(_ attr: Attr) -> fuse_entry_param {
        var entry = fuse_entry_param()
        entry.ino = fuse_ino_t(attr.ino)
        entry.generation = 0
        entry.attr = stat(attr)
        entry.attr_timeout = attr.volatile ? 0 : cacheSeconds
        entry.entry_timeout = cacheSeconds
        return entry
    }

    static func entry(_ req: fuse_req_t?, _ attr: Attr) {
        var entry = entryParam(attr)
        _ = fuse_reply_entry(req, &entry)
    }

    static func attr(_ req: fuse_req_t?, _ attr: Attr) {
        var st = stat(attr)
        _ = fuse_reply_attr(req, &st, attr.volatile ? 0 : cacheSeconds)
    }

    static func apply(_ out: OpenOut, to fi: UnsafeMutablePointer<fuse_file_info>) {
        fi.pointee.fh = out.fh
        fi.pointee.keep_cache = out.keepCache ? 1 : 0
        fi.pointee.noflush = out.noFlush ? 1 : 0
        fi.pointee.direct_io = out.directIO ? 1 : 0
    }

    /// OPEN's reply naming a backing file (`out.backing`), written whole: libfuse 3.14 has no field
    /// for the id. struct fuse_open_out: fh u64, open_flags u32, backing_id i32.
    @discardableResult
    static func openPassthrough(_ req: fuse_req_t?, _ out: OpenOut) -> Int32 {
        let reply = openOut(out)
        return reply.withUnsafeBytes { fuse_reply_buf(req, $0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count) }
    }

    /// CREATE's reply naming a backing file (a name that appeared after the kernel's lookup, held
    /// open in passthrough): struct fuse_entry_out, then struct fuse_open_out.
    @discardableResult
    static func createPassthrough(_ req: fuse_req_t?, _ attr: Attr, _ out: OpenOut) -> Int32 {
        let st = stat(attr)
        var entry = [UInt8](repeating: 0, count: 128)
        let valid = attr.volatile ? 0 : UInt64(cacheSeconds)
        entry.withUnsafeMutableBytes { raw in
            // nodeid, generation, entry_valid, attr_valid, entry_valid_nsec, attr_valid_nsec, then
            // struct fuse_attr: ino, size, blocks, atime, mtime, ctime (u64), their nsec, mode, nlink,
            // uid, gid, rdev, blksize, flags (u32).
            raw.storeBytes(of: attr.ino.littleEndian, toByteOffset: 0, as: UInt64.self)
            raw.storeBytes(of: UInt64(cacheSeconds).littleEndian, toByteOffset: 16, as: UInt64.self)
            raw.storeBytes(of: valid.littleEndian, toByteOffset: 24, as: UInt64.self)
            let fields: [UInt64] = [attr.ino, UInt64(st.st_size), UInt64(st.st_blocks)] + Array(repeating: UInt64(st.st_mtim.tv_sec), count: 3)
            for (i, field) in fields.enumerated() { raw.storeBytes(of: field.littleEndian, toByteOffset: 40 + 8 * i, as: UInt64.self) }
            let nsec = UInt32(st.st_mtim.tv_nsec)
            let small: [UInt32] = [nsec, nsec, nsec, st.st_mode, UInt32(st.st_nlink), st.st_uid, st.st_gid, 0, 4096, 0]
            for (i, field) in small.enumerated() { raw.storeBytes(of: field.littleEndian, toByteOffset: 88 + 4 * i, as: UInt32.self) }
        }
        let reply = entry + openOut(out)
        return reply.withUnsafeBytes { fuse_reply_buf(req, $0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count) }
    }

    private static func openOut(_ out: OpenOut) -> [UInt8] {
        var flags = FusePassthrough.openPassthroughFlag
        if out.directIO { flags |= 1 << 0 }  // FOPEN_DIRECT_IO: reads and writes still come here
        if out.noFlush { flags |= FusePassthrough.openNoFlushFlag }
        var reply = [UInt8](repeating: 0, count: 16)
        reply.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: out.fh.littleEndian, toByteOffset: 0, as: UInt64.self)
            raw.storeBytes(of: flags.littleEndian, toByteOffset: 8, as: UInt32.self)
            raw.storeBytes(of: (out.backing ?? 0).littleEndian, toByteOffset: 12, as: Int32.self)
        }
        return reply
    }

    /// Returns what libfuse's write of the reply returned: -ENOENT when the caller was interrupted
    /// and the kernel dropped the request, so the handle will never be released by it.
    @discardableResult
    static func open(_ req: fuse_req_t?, _ fi: UnsafeMutablePointer<fuse_file_info>?, _ out: OpenOut) -> Int32 {
        guard let fi else { return fuse_reply_err(req, EIO) }
        apply(out, to: fi)
        return fuse_reply_open(req, fi)
    }

    @discardableResult
    static func create(_ req: fuse_req_t?, _ fi: UnsafeMutablePointer<fuse_file_info>?, _ attr: Attr, _ out: OpenOut) -> Int32 {
        guard let fi else { return fuse_reply_err(req, EIO) }
        apply(out, to: fi)
        var entry = entryParam(attr)
        return fuse_reply_create(req, &entry, fi)
    }

    static func bytes(_ req: fuse_req_t?, _ bytes: ArraySlice<UInt8>) {
        _ = bytes.withUnsafeBytes { raw in
            fuse_reply_buf(req, raw.baseAddress?.assumingMemoryBound(to: CChar.self), raw.count)
        }
    }

    /// getxattr/listxattr sizing (Docs/filesystem.md §Xattr conventions): size 0 asks for the length,
    /// a buffer too small gets ERANGE.
    static func xattr(_ req: fuse_req_t?, _ value: [UInt8], requested size: Int) {
        if size == 0 {
            _ = fuse_reply_xattr(req, value.count)
        } else if size < value.count {
            _ = fuse_reply_err(req, ERANGE)
        } else {
            bytes(req, value[...])
        }
    }

    static func error(_ req: fuse_req_t?, _ code: Int32) {
        _ = fuse_reply_err(req, code)
    }
}
