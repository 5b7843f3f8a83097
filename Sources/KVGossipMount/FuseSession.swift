import CFuse3
import Dispatch
import Foundation
import Glibc
import KVGossipStore
import Logging
import Synchronization

/// One libfuse session: mounted, served by the multi-threaded loop on its own thread, unmounted.
final class FuseSession: @unchecked Sendable {
    // Written once in init, then only read; libfuse synchronises its own use of the session.
    let pointer: OpaquePointer
    let mountpoint: String
    private let logger: Logger
    private let loopExited = DispatchSemaphore(value: 0)
    private let exitedFlag = Atomic<Bool>(false)
    /// The connection's number under /sys/fs/fuse/connections, for aborting a stuck unmount (set
    /// once the mount answered).
    var connection: UInt32? {
        get { connectionNumber.withLock { $0 } }
        set { connectionNumber.withLock { $0 = newValue } }
    }
    private let connectionNumber = Mutex<UInt32?>(nil)

    /// Creates the session and mounts it. `userdata` is what `fuse_req_userdata` returns.
    init(mountpoint: String, options: String, userdata: UnsafeMutableRawPointer, logger: Logger) throws {
        self.mountpoint = mountpoint
        self.logger = logger
        var ops = FuseOps.table()
        let arguments = ["kvgossip", "-o", options] + (ProcessInfo.processInfo.environment["KVGOSSIP_FUSE_DEBUG"] != nil ? ["-d"] : [])
        guard let se = FuseArguments.with(arguments, { fuse_session_new(&$0, &ops, MemoryLayout<fuse_lowlevel_ops>.size, userdata) }) else {
            throw MountError.sessionFailed("fuse_session_new refused the options \(options)")
        }
        guard fuse_session_mount(se, mountpoint) == 0 else {
            fuse_session_destroy(se)
            throw MountError.mountFailed("fuse_session_mount failed at \(mountpoint) (see the libfuse message above)")
        }
        // Requests and replies through FusePassthrough's hooks, which ask for passthrough at INIT.
        var io = FusePassthrough.customIO
        guard fuse_session_custom_io(se, &io, fuse_session_fd(se)) == 0 else {
            fuse_session_unmount(se)
            fuse_session_destroy(se)
            throw MountError.sessionFailed("libfuse refused the mount's I/O hooks")
        }
        pointer = se
    }

    var hasExited: Bool { exitedFlag.load(ordering: .acquiring) }

    /// Serves requests until the filesystem is unmounted or the connection aborted; then calls
    /// `ended` on the loop's thread.
    func startLoop(ended: @escaping @Sendable () -> Void) {
        startNamedThread("kvg-fuse") { [self] in
            // Enough idle workers that a burst of OPEN/RELEASE pairs does not make libfuse start and
            // stop threads, and one /dev/fuse clone per worker: both measurably shorten a round trip
            // here (kvgossip-bench mount).
            let config = fuse_loop_cfg_create()
            // As many kept idle as may run: a worker libfuse lets exit could be holding the read
            // turn (`RequestReader`; the turn also frees itself from a thread that is gone).
            let workers: UInt32 = 16
            fuse_loop_cfg_set_max_threads(config, workers)
            fuse_loop_cfg_set_idle_threads(config, workers)
            fuse_loop_cfg_set_clone_fd(config, 1)
            let rc = fuse_session_loop_mt(pointer, config)
            fuse_loop_cfg_destroy(config)
            if rc != 0 { logger.debug("fuse loop ended", metadata: ["rc": "\(rc)"]) }
            exitedFlag.store(true, ordering: .releasing)
            loopExited.signal()
            ended()
        }
    }

    /// Unmounts and waits for the loop to end. A busy mountpoint is detached lazily, and if the
    /// loop still serves (someone holds files open) the connection is aborted, so stop() returns.
    func unmount() {
        if !hasExited {
            if umount2(mountpoint, 0) != 0 {
                let code = errno
                if code == EBUSY {
                    logger.warning("mountpoint busy; detaching lazily", metadata: ["mountpoint": "\(mountpoint)"])
                    _ = umount2(mountpoint, Int32(MNT_DETACH))
                } else if code != EINVAL {
                    logger.warning("unmount failed", metadata: ["mountpoint": "\(mountpoint)", "errno": "\(code)"])
                }
            }
            if loopExited.wait(timeout: .now() + 1) == .timedOut {
                if let connection { FuseConnections.abort(connection, logger: logger) }
                loopExited.wait()
            }
        } else {
            loopExited.wait()
        }
        // Closes the device; unmounts (lazily) only if the mount somehow survived.
        fuse_session_unmount(pointer)
        fuse_session_destroy(pointer)
    }
}

/// The fusectl filesystem: one directory per connection, with an `abort` file that fails every
/// pending and future request with ENOTCONN (the only cure for a hung daemon's mount).
enum FuseConnections {
    static let directory = "/sys/fs/fuse/connections"

    /// A FUSE superblock's anonymous device has major 0; the connection is named by the minor.
    static func number(ofDevice dev: UInt64) -> UInt32 {
        UInt32((dev & 0xff) | ((dev >> 12) & 0xfff00))
    }

    /// Whether the kernel still has connection `connection` (mounting fusectl if needed).
    static func exists(_ connection: UInt32) -> Bool {
        if access(directory, F_OK) == 0, access(directory + "/\(connection)", F_OK) == 0 { return true }
        _ = Glibc.mount("fusectl", directory, "fusectl", 0, nil)
        return access(directory + "/\(connection)", F_OK) == 0
    }

    static func abort(_ connection: UInt32, logger: Logger) {
        if access(directory + "/\(connection)", F_OK) != 0 {
            // Not mounted on this machine by default; systemd would mount it.
            _ = Glibc.mount("fusectl", directory, "fusectl", 0, nil)
        }
        let path = directory + "/\(connection)/abort"
        let fd = Glibc.open(path, O_WRONLY)
        guard fd >= 0 else {
            logger.error("cannot abort FUSE connection", metadata: ["path": "\(path)", "errno": "\(errno)"])
            return
        }
        _ = Glibc.write(fd, "1", 1)
        Glibc.close(fd)
        logger.warning("aborted FUSE connection", metadata: ["connection": "\(connection)"])
    }
}

/// `fuse_session_new` takes its options as a C argument vector; this builds one that lives for
/// the call.
public enum FuseArguments {
    public static func with<T>(_ arguments: [String], _ body: (inout fuse_args) throws -> T) rethrows -> T {
        let argv = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: arguments.count + 1)
        for (i, argument) in arguments.enumerated() { argv[i] = strdup(argument) }
        argv[arguments.count] = nil
        defer {
            for i in 0..<arguments.count { free(argv[i]) }
            argv.deallocate()
        }
        var args = fuse_args(argc: Int32(arguments.count), argv: argv, allocated: 0)
        return try body(&args)
    }
}

/// Settings of the kernel's `fuse` module that change what a request costs: for the mount's log
/// line, its read turn and the benchmark's header.
public enum FuseModule {
    /// `wake_here`, where the kernel has it (not every kernel does): "Y" wakes a caller waiting for
    /// an answer on the answering thread's CPU, "N" on the caller's own, which on a VM whose idle
    /// vCPUs halt costs a trip through the hypervisor per request (Docs/filesystem.md §Waking the
    /// caller where the answer is). nil where the parameter does not exist.
    public static func wakeHere(parameter: String = "/sys/module/fuse/parameters/wake_here") -> String? {
        (try? String(contentsOfFile: parameter, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
