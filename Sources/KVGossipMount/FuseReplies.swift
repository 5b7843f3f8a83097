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

    static func open(_ req: fuse_req_t?, _ fi: UnsafeMutablePointer<fuse_file_info>?, _ out: OpenOut) {
        guard let fi else {
            _ = fuse_reply_err(req, EIO)
            return
        }
        apply(out, to: fi)
        _ = fuse_reply_open(req, fi)
    }

    static func create(_ req: fuse_req_t?, _ fi: UnsafeMutablePointer<fuse_file_info>?, _ attr: Attr, _ out: OpenOut) {
        guard let fi else {
            _ = fuse_reply_err(req, EIO)
            return
        }
        apply(out, to: fi)
        var entry = entryParam(attr)
        _ = fuse_reply_create(req, &entry, fi)
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
