import CFuse3
import Dispatch
import Foundation
import Glibc
import KVGossipCore
import Synchronization

/// The pointer libfuse hands back; only used while the session lives.
struct SessionRef: @unchecked Sendable {
    let pointer: OpaquePointer
}

/// The state behind one mount, reached from the C callbacks through `fuse_req_userdata`, so several
/// mounts can live in one process (the tests run them side by side).
final class MountCore: Sendable {
    let ctx: MountContext
    let state: Mutex<FSState>
    /// Serialises every request that can change names, records or a writer's buffer (everything but
    /// reading: LOOKUP, GETATTR, a read-only OPEN, READ, a reader's RELEASE, directory listings),
    /// so a save can be minted without holding `state`: readers go on while SQLite syncs, and no
    /// other change interleaves with the save. Always taken before `state`, never inside it.
    let mutation = Mutex<Void>(())
    /// The mountpoint as an absolute path without a trailing slash; the follower writes below it.
    let mountpoint: String
    let peers: @Sendable () -> [String]
    /// Wakes the change follower: store changes, and local edits that left work for it.
    let followerWake = DispatchSemaphore(value: 0)
    private let sessionRef = Mutex<SessionRef?>(nil)
    /// Backing files for readers in the default mode (`FusePassthrough`); off with
    /// `--mount-page-cache`, whose readers use the kernel's cache of the mount itself, or with
    /// KVGOSSIP_MOUNT_PASSTHROUGH=0 in the environment (for comparisons).
    let passthrough: FusePassthrough
    /// Who reads the connection's next request (`RequestReader`; KVGOSSIP_MOUNT_SPIN_US=0 in the
    /// environment turns it off). Its polls follow the fuse module's `wake_here` as it is when the
    /// mount starts.
    let requestReader = RequestReader.configured()
    /// READ requests answered (tests: a passthrough reader's reads never reach the mount).
    let readRequests = Atomic<Int>(0)

    init(ctx: MountContext, mountpoint: String, peers: @escaping @Sendable () -> [String]) {
        self.ctx = ctx
        passthrough = FusePassthrough(
            wanted: !ctx.readerPageCache && ProcessInfo.processInfo.environment["KVGOSSIP_MOUNT_PASSTHROUGH"] != "0")
        self.state = Mutex(FSState(ctx: ctx))
        self.mountpoint = mountpoint
        self.peers = peers
    }

    static func from(_ req: fuse_req_t?) -> MountCore {
        Unmanaged<MountCore>.fromOpaque(fuse_req_userdata(req)!).takeUnretainedValue()
    }

    var session: OpaquePointer? { sessionRef.withLock { $0?.pointer } }

    func setSession(_ pointer: OpaquePointer?) {
        sessionRef.withLock { $0 = pointer.map(SessionRef.init) }
    }

    // MARK: Recognising the mount's own requests

    /// The thread of the replay helper that makes its calls: its requests replay stored changes
    /// and never mint.
    private let helperThread = Mutex<pid_t>(0)

    func setHelper(thread: pid_t) { helperThread.withLock { $0 = thread } }

    /// Whether the request comes from the replay helper. `fuse_req_ctx(req)->pid` is the calling
    /// thread's id (Docs/filesystem.md §Caller thread ids), which the helper reports at start.
    func isSelf(_ req: fuse_req_t?) -> Bool {
        let pid = cfuse_req_pid(req)
        return pid != 0 && helperThread.withLock { $0 == pid }
    }

    // MARK: Running state operations

    /// Runs one state operation under the lock and replies after releasing it.
    func run<T: Sendable>(_ req: fuse_req_t?, _ body: (inout FSState) throws(FSError) -> T, reply: (T) -> Void) {
        do {
            let value = try state.withLock { (st: inout sending FSState) throws(FSError) -> sending T in
                try body(&st)
            }
            reply(value)
        } catch {
            FuseReply.error(req, error.code)
        }
    }

    /// Runs one mutating operation (`mutation` held) and replies after releasing both locks.
    func mutate<T: Sendable>(_ req: fuse_req_t?, _ body: (inout FSState) throws(FSError) -> T, reply: (T) -> Void) {
        let outcome: Result<T, FSError> = withMutation {
            do throws(FSError) {
                return .success(try state.withLock { (st: inout sending FSState) throws(FSError) -> sending T in try body(&st) })
            } catch {
                return .failure(error)
            }
        }
        switch outcome {
        case .success(let value): reply(value)
        case .failure(let error): FuseReply.error(req, error.code)
        }
    }

    /// Runs `body` holding `mutation`. Waiting for it may take a save's length, so a worker holding
    /// the read turn that finds it taken gives the turn up first (`RequestReader.yieldTurn`),
    /// whatever its request looked like; a save inside gives it up before minting
    /// (`commitOutsideLock`).
    func withMutation<T>(_ body: () -> sending T) -> sending T {
        if let done = mutation.withLockIfAvailable({ _ in body() }) { return done }
        requestReader.yieldTurn()
        return mutation.withLock { _ in body() }
    }

    /// A save: `prepare` decides under the state lock, the record is minted without it (SQLite and
    /// fsync), and shown under the lock again. The caller holds `mutation`, so nothing else changes
    /// names or buffers meanwhile; readers are served throughout.
    /// Returns whether a record was minted.
    @discardableResult
    func commitOutsideLock(_ prepare: (inout FSState) throws(FSError) -> FSState.PendingCommit?) throws(FSError) -> Bool {
        let pending = try state.withLock { (st: inout sending FSState) throws(FSError) -> sending FSState.PendingCommit? in
            try prepare(&st)
        }
        guard let pending else { return false }
        // A mint takes a signature, SQL and a sync: the requests behind it are read meanwhile.
        requestReader.yieldTurn()
        let result = OwnSave.$current.withValue(OwnSave(mount: ObjectIdentifier(self), key: pending.key)) { () -> Result<Record, FSError> in
            do throws(FSError) {
                return .success(try FSState.mint(pending.key, pending.bytes, ctx: ctx))
            } catch {
                return .failure(error)
            }
        }
        // A failed save is compared again at once; a successful one only if the follower passed
        // over its path meanwhile (`finishCommit`).
        var wake = true
        defer { if wake { followerWake.signal() } }
        wake = try state.withLock { (st: inout sending FSState) throws(FSError) -> Bool in try st.finishCommit(pending, result) }
        return true
    }

    /// Asks the kernel to drop its cached attributes and pages of an inode. Never called from a
    /// request handler: the kernel may be waiting on that very handler (Docs/filesystem.md §Deadlocks).
    func invalidateInode(_ ino: UInt64, attributesOnly: Bool = false) {
        guard let se = session else { return }
        _ = fuse_lowlevel_notify_inval_inode(se, fuse_ino_t(ino), attributesOnly ? -1 : 0, 0)
    }

    func invalidateEntry(parent: UInt64, name: String) {
        guard let se = session else { return }
        _ = name.withCString { fuse_lowlevel_notify_inval_entry(se, fuse_ino_t(parent), $0, name.utf8.count) }
    }
}
