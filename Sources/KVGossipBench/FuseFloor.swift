import CFuse3
import Foundation
import Glibc
import KVGossipMount

/// The floor under the mount's open + read + close: a FUSE filesystem that does nothing but reply,
/// measured in the same run as the mount and tmpfs. It serves one file, `f`, from a process of its
/// own (`kvgossip-bench fuse-floor`), with what the mount's readers get: 60 s entry and attribute
/// timeouts, `keep_cache` and `noflush` on open, and the connection read through the mount's own
/// read turn (`RequestReader`, with the polls an agent would choose here), on one thread that
/// answers everything.
/// Whatever the mount costs beyond it is the mount's; what it costs over tmpfs is this machine's
/// price of a FUSE round trip (Docs/filesystem.md §Waking the caller where the answer is).
enum FuseFloor {
    /// What `f` holds, and the read turn its one thread reads the connection through; set before
    /// the loop starts.
    nonisolated(unsafe) private static var content: [UInt8] = []
    nonisolated(unsafe) private static var reader = RequestReader(spinMicroseconds: 0)

    static let fileName = "f"

    // MARK: The filesystem's process

    /// `kvgossip-bench fuse-floor MOUNTPOINT CONTENT`: serves until SIGTERM, its parent's death or
    /// an unmount; returns the exit status.
    static func serve(mountpoint: String, content: String) -> Int32 {
        _ = cfuse_set_parent_death_signal(SIGTERM)
        Self.content = Array(content.utf8)
        reader = RequestReader.configured()
        var ops = operations()
        let arguments = ["kvgossip-bench-floor", "-o", "fsname=kvgossip-floor"]
        guard let se = FuseArguments.with(arguments, { fuse_session_new(&$0, &ops, MemoryLayout<fuse_lowlevel_ops>.size, nil) }) else { return 1 }
        defer { fuse_session_destroy(se) }
        guard fuse_set_signal_handlers(se) == 0, fuse_session_mount(se, mountpoint) == 0 else { return 1 }
        defer { fuse_session_unmount(se) }
        var io = fuse_custom_io()
        io.read = { fd, buffer, length, _ in
            guard let buffer else {
                errno = EINVAL
                return -1
            }
            return RequestReader.read(turn: FuseFloor.reader.turn, fd, buffer, length)
        }
        io.writev = { fd, iov, count, _ in Glibc.writev(fd, iov, count) }
        guard fuse_session_custom_io(se, &io, fuse_session_fd(se)) == 0 else { return 1 }
        let rc = fuse_session_loop(se)
        fuse_remove_signal_handlers(se)
        return rc < 0 ? 1 : 0
    }

    private static func attributes(_ ino: fuse_ino_t) -> stat {
        var st = stat()
        st.st_ino = __ino_t(ino)
        if ino == 1 {
            st.st_mode = S_IFDIR | 0o755
            st.st_nlink = 2
        } else {
            st.st_mode = S_IFREG | 0o444
            st.st_nlink = 1
            st.st_size = off_t(content.count)
        }
        return st
    }

    private static func operations() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.lookup = { req, parent, name in
            guard parent == 1, let name, String(cString: name) == FuseFloor.fileName else {
                _ = fuse_reply_err(req, ENOENT)
                return
            }
            var entry = fuse_entry_param()
            entry.ino = 2
            entry.attr = FuseFloor.attributes(2)
            entry.attr_timeout = 60
            entry.entry_timeout = 60
            _ = fuse_reply_entry(req, &entry)
        }
        ops.getattr = { req, ino, _ in
            guard ino == 1 || ino == 2 else {
                _ = fuse_reply_err(req, ENOENT)
                return
            }
            var st = FuseFloor.attributes(ino)
            _ = fuse_reply_attr(req, &st, 60)
        }
        ops.open = { req, ino, fi in
            guard ino == 2, let fi else {
                _ = fuse_reply_err(req, EISDIR)
                return
            }
            fi.pointee.keep_cache = 1
            fi.pointee.noflush = 1
            _ = fuse_reply_open(req, fi)
        }
        ops.read = { req, _, size, offset, _ in
            let start = min(max(0, Int(offset)), FuseFloor.content.count)
            let count = min(size, FuseFloor.content.count - start)
            _ = FuseFloor.content.withUnsafeBytes { fuse_reply_buf(req, $0.baseAddress! + start, count) }
        }
        ops.release = { req, _, _ in _ = fuse_reply_err(req, 0) }
        return ops
    }

    // MARK: The measurement

    /// Mounts the floor under a new directory, runs `measure` on the path of its file, then stops
    /// it and makes sure nothing stays mounted, whatever `measure` did.
    static func withFloor<T>(content: [UInt8], _ measure: (String) throws -> T) async throws -> T {
        let dir = Bench.tempDirectory()
        let mountpoint = dir + "/floor"
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let process = Process()
        let bench = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        process.executableURL = URL(fileURLWithPath: bench)
        process.arguments = ["fuse-floor", mountpoint, String(decoding: content, as: UTF8.self)]
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        defer {
            // SIGTERM only marks libfuse's loop as done (and may reach a thread other than the
            // loop's); detaching the mount ends the loop's read of the connection.
            process.terminate()
            _ = umount2(mountpoint, Int32(MNT_DETACH))
            process.waitUntilExit()
        }
        try await MountBench.waitForMount(mountpoint)
        return try measure(mountpoint + "/" + fileName)
    }
}
