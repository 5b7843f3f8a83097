import CFuse3
import Glibc
import Synchronization

/// FUSE passthrough (Linux 6.9 and later): a reader's OPEN names a backing file, and the kernel
/// serves that handle's reads from it without asking the mount again (Docs/filesystem.md §Reading).
/// Each backing is a memfd holding one version's bytes, so a reader keeps its version for as long
/// as it holds the file, and its reads cost what reading tmpfs costs.
///
/// libfuse 3.14 predates passthrough: it neither asks for it at INIT nor replies to OPEN with a
/// backing id. So the session's reads and writes of /dev/fuse go through `customIO`, which notes
/// whether the kernel's INIT offers passthrough and adds the request to libfuse's INIT reply; OPEN
/// replies with a backing are written whole (`FuseReply.openPassthrough`).
final class FusePassthrough: Sendable {
    // Protocol values from the kernel's <linux/fuse.h> (7.40), which Debian 12's headers predate.
    static let initOpcode: UInt32 = 26
    static let initExtFlag: UInt32 = 1 << 30
    /// FUSE_PASSTHROUGH is bit 37 of the 64 INIT flags: bit 5 of `flags2`.
    static let passthroughFlag2: UInt32 = 1 << 5
    static let openPassthroughFlag: UInt32 = 1 << 7
    static let openNoFlushFlag: UInt32 = 1 << 5
    // _IOW(229, 1, struct fuse_backing_map) and _IOW(229, 2, uint32_t).
    static let backingOpenRequest: UInt = (1 << 30) | (16 << 16) | (229 << 8) | 1
    static let backingCloseRequest: UInt = (1 << 30) | (4 << 16) | (229 << 8) | 2

    /// Whether this mount asks for passthrough at all (readers in the default, direct-I/O mode).
    let wanted: Bool
    /// The INIT request's id while its reply has not been written; 0 otherwise.
    private let initPending = Atomic<UInt64>(0)
    /// The kernel offered passthrough and the INIT reply asked for it.
    private let negotiated = Atomic<Bool>(false)
    /// A backing could not be registered for a reason that will not go away (not permitted, not
    /// supported): readers use direct I/O from then on.
    private let refused = Atomic<Bool>(false)
    /// The session's /dev/fuse descriptor, where backings are registered.
    private let device = Atomic<Int32>(-1)

    init(wanted: Bool) {
        self.wanted = wanted
    }

    var active: Bool { wanted && negotiated.load(ordering: .acquiring) && !refused.load(ordering: .relaxed) && device.load(ordering: .relaxed) >= 0 }

    func setDevice(_ fd: Int32) { device.store(fd, ordering: .releasing) }

    // MARK: Backing files

    enum MakeResult {
        case made(Int32)
        /// This open uses direct I/O; `permanent`: so will every later one.
        case failed(errno: Int32, permanent: Bool)
    }

    /// A memfd holding `bytes`, registered with the kernel; its id, which holds the file until
    /// `close`. Makes syscalls: never under the state lock.
    func make(_ bytes: [UInt8]) -> MakeResult {
        let fd = cfuse_memfd_create("kvgossip-value", 1 | 2 /* MFD_CLOEXEC | MFD_ALLOW_SEALING */)
        guard fd >= 0 else { return .failed(errno: errno, permanent: false) }
        defer { Glibc.close(fd) }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return .failed(errno: n < 0 ? errno : EIO, permanent: false) }
            done += n
        }
        // Sealed, so nothing can change a version's bytes once readers may see them: a writer's
        // handle names the open backing too, and a shared writable mapping of it would otherwise
        // write straight into the readers' snapshot.
        guard cfuse_seal_memfd(fd) == 0 else { return .failed(errno: errno, permanent: false) }
        // struct fuse_backing_map { int32 fd; uint32 flags; uint64 padding; }
        var map: (Int32, UInt32, UInt64) = (fd, 0, 0)
        let id = withUnsafeMutablePointer(to: &map) { cfuse_ioctl_pointer(device.load(ordering: .acquiring), Self.backingOpenRequest, $0) }
        guard id > 0 else {
            let code = errno
            let permanent = code == EPERM || code == EOPNOTSUPP || code == ENOTTY || code == EINVAL
            if permanent { refused.store(true, ordering: .relaxed) }
            return .failed(errno: code, permanent: permanent)
        }
        return .made(id)
    }

    /// Lets go of backings no handle will be given again (open handles keep their own reference).
    func close(_ ids: [Int32]) {
        let fd = device.load(ordering: .acquiring)
        for var id in ids { _ = withUnsafeMutablePointer(to: &id) { cfuse_ioctl_pointer(fd, Self.backingCloseRequest, $0) } }
    }

    // MARK: /dev/fuse I/O (libfuse's custom I/O hooks)

    static func from(_ userdata: UnsafeMutableRawPointer?) -> FusePassthrough {
        Unmanaged<MountCore>.fromOpaque(userdata!).takeUnretainedValue().passthrough
    }

    /// libfuse reads every request through this (by way of `RequestReader`) and writes every reply
    /// through `writev`; both look at the INIT exchange.
    static var customIO: fuse_custom_io {
        var io = fuse_custom_io()
        io.read = { fd, buffer, length, userdata in
            guard let buffer else {
                errno = EINVAL
                return -1
            }
            // The turn's pointer is read without retaining the core (see `RequestReader.turn`).
            let turn = Unmanaged<MountCore>.fromOpaque(userdata!)._withUnsafeGuaranteedRef { $0.requestReader.turn }
            let n = RequestReader.read(turn: turn, fd, buffer, length)
            // struct fuse_in_header: len u32, opcode u32, unique u64, …: 40 bytes; fuse_init_in after it.
            if n >= 40 + 20, buffer.load(fromByteOffset: 4, as: UInt32.self) == FusePassthrough.initOpcode {
                FusePassthrough.from(userdata).noteInit(buffer)
            }
            return n
        }
        io.writev = { fd, iov, count, userdata in
            if let iov, count >= 2 { FusePassthrough.from(userdata).amendInitReply(iov) }
            return Glibc.writev(fd, iov, count)
        }
        return io
    }

    private func noteInit(_ request: UnsafeMutableRawPointer) {
        let unique = request.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
        // struct fuse_init_in: major, minor, max_readahead, flags, flags2.
        let flags = request.loadUnaligned(fromByteOffset: 40 + 12, as: UInt32.self)
        let flags2 = request.loadUnaligned(fromByteOffset: 40 + 16, as: UInt32.self)
        guard wanted, flags & Self.initExtFlag != 0, flags2 & Self.passthroughFlag2 != 0 else { return }
        initPending.store(unique, ordering: .releasing)
    }

    private func amendInitReply(_ iov: UnsafeMutablePointer<iovec>) {
        let pending = initPending.load(ordering: .acquiring)
        guard pending != 0, let header = iov[0].iov_base, iov[0].iov_len >= 16,
            header.loadUnaligned(fromByteOffset: 8, as: UInt64.self) == pending else { return }
        initPending.store(0, ordering: .releasing)
        // struct fuse_out_header: len u32, error i32, unique u64. struct fuse_init_out: flags at 12,
        // flags2 at 32, max_stack_depth at 36 (libfuse sends the 64-byte form).
        guard header.loadUnaligned(fromByteOffset: 4, as: Int32.self) == 0, let body = iov[1].iov_base, iov[1].iov_len >= 40 else { return }
        let flags = body.loadUnaligned(fromByteOffset: 12, as: UInt32.self)
        body.storeBytes(of: flags | Self.initExtFlag, toByteOffset: 12, as: UInt32.self)
        let flags2 = body.loadUnaligned(fromByteOffset: 32, as: UInt32.self)
        body.storeBytes(of: flags2 | Self.passthroughFlag2, toByteOffset: 32, as: UInt32.self)
        // Backing files live on a filesystem that stacks on nothing (memfd): one level is enough.
        body.storeBytes(of: UInt32(1), toByteOffset: 36, as: UInt32.self)
        negotiated.store(true, ordering: .releasing)
    }
}
