import CFuse3
import Foundation
import Glibc

/// Reads the connection's requests one worker at a time, and after a request keeps polling for a
/// short while before sleeping, as `ReadTurnPolls` sets for the host (Docs/filesystem.md §One reader
/// at a time).
///
/// A request that finds the worker meant to read it asleep pays for waking it, and on a VM whose
/// idle vCPUs halt that is about 10 µs to the sender and as much again before the worker runs: twice
/// per open, once per close. With every idle libfuse worker asleep in read(2) of the connection, the
/// kernel wakes one for each request even while another is about to read. So only the holder of the
/// turn reads; idle workers wait for the turn on a futex, out of the kernel's sight; and the holder
/// gives the turn up before a request that may wait (a save, anything that takes the mutation lock),
/// so a slow request never holds up the next. Public so that `kvgossip-bench`'s floor filesystem
/// reads its connection the same way.
public final class RequestReader: @unchecked Sendable {
    /// The turn, shared by the workers through C atomics; nil when off. Written once in init. The
    /// read hook reaches it through `read(turn:…)` without touching a reference count: libfuse
    /// cancels idle workers inside that hook, and a retain taken before the cancellation would never
    /// be released, keeping the whole mount alive.
    public let turn: UnsafeMutablePointer<cfuse_reader>?
    /// The holder's polls; nil when the turn is off.
    public let windows: ReadTurnPolls?

    /// `spinMicroseconds` 0 turns it off: every worker reads the connection itself, as libfuse does.
    /// Otherwise `ReadTurnPolls` says how long the holder polls after each kind of request.
    public init(spinMicroseconds: Int, wakeHere: String? = nil) {
        guard spinMicroseconds > 0 else {
            turn = nil
            windows = nil
            return
        }
        let windows = ReadTurnPolls(spinMicroseconds: spinMicroseconds, wakeHere: wakeHere)
        self.windows = windows
        let turn = UnsafeMutablePointer<cfuse_reader>.allocate(capacity: 1)
        turn.initialize(to: cfuse_reader(
            holder: 0, turn: 0, waiting: 0, spin_ns: windows.afterQuick, spin_long_ns: windows.afterSlow,
            spin_open_ns: windows.afterReaderOpen, spin_short_ns: windows.afterQuick))
        self.turn = turn
    }

    /// The turn as KVGOSSIP_MOUNT_SPIN_US and the fuse module's `wake_here` set it on this host now.
    public static func configured() -> RequestReader {
        RequestReader(spinMicroseconds: ReadTurnPolls.configuredSpinMicroseconds, wakeHere: FuseModule.wakeHere())
    }

    deinit {
        // The session, and so every worker that could read, has ended before the core goes.
        turn?.deallocate()
    }

    /// libfuse's read of the next request, through the session's I/O hooks. Static, over the raw
    /// turn, so nothing reference-counted is live across the read (see `turn`).
    public static func read(turn: UnsafeMutablePointer<cfuse_reader>?, _ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ length: Int) -> Int {
        guard let turn else { return Glibc.read(fd, buffer, length) }
        let n = cfuse_reader_read(turn, fd, buffer, length)
        let kind = n > 0 ? Self.kind(UnsafeRawBufferPointer(start: buffer, count: n)) : .slow
        // Only the holder writes the window, before it reads again or hands the turn on.
        let window: Int64
        switch kind {
        case .readerOpen: window = turn.pointee.spin_open_ns
        case .quick: window = turn.pointee.spin_short_ns
        case .writerStep, .slow: window = turn.pointee.spin_long_ns
        }
        cfuse_reader_set_spin(turn, window)
        if kind == .slow { cfuse_reader_hand_off(turn) }
        return n
    }

    /// Gives the turn up if this thread holds it: for a handler about to wait (the mutation lock, a
    /// save), whatever its request looked like (a RELEASE of a file created `O_RDONLY` arrives with
    /// read-only flags, yet it may commit).
    func yieldTurn() {
        cfuse_reader_yield(turn)
    }

    enum Kind: Equatable {
        /// OPEN of a handle for reading only: its RELEASE is due shortly.
        case readerOpen
        /// Answered by the holder: under the state lock, or the mutation lock when it is free.
        case quick
        /// A writer's OPEN, GETXATTR or WRITE: quick, and the same caller's next request follows its
        /// answer, so the holder polls as long as after a slow request.
        case writerStep
        /// May wait (a save, the mutation lock, the store's writer): the turn goes to another worker.
        case slow
    }

    /// Whether the worker may keep the turn while it answers this request: the request waits for
    /// nothing but the state lock, or for the mutation lock only when that lock is free (a handler
    /// that finds it taken gives the turn up first, `MountCore.withMutation`), and never mints
    /// without giving the turn up (`MountCore.commitOutsideLock`). So a writer's OPEN, GETXATTR
    /// (the kernel's `security.capability` check at a truncating open) and WRITE (`writerStep`)
    /// and any RELEASE are answered by the holder; FLUSH and FSYNC, which save, and the namespace
    /// changes, which may, hand the turn on as they are read. Anything unreadable is slow.
    static func kind(_ request: UnsafeRawBufferPointer) -> Kind {
        // struct fuse_in_header: len u32, opcode u32, unique u64, nodeid u64, uid, gid, pid u32,
        // total_extlen u16, padding u16: 40 bytes.
        guard request.count >= 40 else { return .slow }
        let opcode = request.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
        switch opcode {
        case 1, 2, 3, 15, 17, 18, 23, 27, 28, 29, 34, 36, 42, 44:
            // LOOKUP, FORGET, GETATTR, READ, STATFS, RELEASE, LISTXATTR, OPENDIR, READDIR,
            // RELEASEDIR, ACCESS, INTERRUPT, BATCH_FORGET, READDIRPLUS.
            return .quick
        case 16, 22:
            // WRITE, GETXATTR (the kernel's `security.capability` check at a truncating open).
            return .writerStep
        case 14:
            // OPEN: struct fuse_open_in starts with the open flags.
            guard request.count >= 44 else { return .slow }
            let flags = Int32(bitPattern: request.loadUnaligned(fromByteOffset: 40, as: UInt32.self))
            return flags & O_ACCMODE == O_RDONLY && flags & O_TRUNC == 0 ? .readerOpen : .writerStep
        default:
            return .slow
        }
    }
}
