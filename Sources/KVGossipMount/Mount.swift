import CFuse3
import Foundation
import Glibc
import KVGossipCore
import KVGossipNode
import KVGossipStore
import Logging
import Synchronization

/// Why a mount could not start.
public enum MountError: Error, CustomStringConvertible {
    case alreadyMounted(String)
    case sessionFailed(String)
    case mountFailed(String)
    case notAnswering(String)

    public var description: String {
        switch self {
        case .alreadyMounted(let s), .sessionFailed(let s), .mountFailed(let s), .notAnswering(let s): s
        }
    }
}

/// The node's tree as a FUSE filesystem (Docs/contract.md §Filesystem view): keys are files,
/// prefixes directories; writing a file mints one signed record at close; changes stored by anyone
/// else are replayed through the mount (by `ReplayHelper`) so inotify watchers see them. See
/// Docs/filesystem.md.
///
/// The agent never touches its own mount from its own process (see `ReplayHelper`). A mount
/// unmounted from outside is noticed when its session ends: the mount reports itself lost
/// (`problem`), and mounts again, retrying with backoff until it succeeds or `stop()` is called.
public final class Mount: Sendable {
    private struct Running {
        let core: MountCore
        let session: FuseSession
        let follower: ChangeFollower
        let tableWatch: MountTableWatch
        let userdata: Unmanaged<MountCore>
        let observation: CommitObservation
    }

    private enum Phase {
        case stopped
        case mounted(Running)
        /// Unmounted from outside; remounting. `error` is the last attempt's failure.
        case lost(since: Date, error: String?)
    }

    private struct State {
        var phase: Phase = .stopped
        var losses = 0
        /// Wakes the remount loop early (stop).
        var generation = 0
    }

    private let node: Node
    private let mountpoint: String
    private let options: MountOptions
    private let logger: Logger
    private let state = Mutex(State())
    private let remountWake = DispatchSemaphore(value: 0)
    /// Entries the mountpoint held when the tree was mounted over them (hidden until it unmounts).
    private let shadowedEntries = Atomic<Int>(0)
    private let helperRestartCount = Atomic<Int>(0)

    /// - Parameters:
    ///   - mountpoint: a directory (created if missing); relative paths are taken from the current
    ///     directory at `start()`.
    public init(node: Node, mountpoint: String, options: MountOptions, logger: Logger) {
        self.node = node
        self.mountpoint = mountpoint
        self.options = options
        self.logger = logger
    }

    /// Clears a stale mount left at the mountpoint by a crashed process, mounts, starts the request
    /// loop, the replay helper and the change follower, and returns once the mount answers (the
    /// helper says so). Does nothing if started.
    public func start() throws {
        try state.withLock { (s: inout sending State) throws in
            guard case .stopped = s.phase else { return }
            s.phase = .mounted(try launch())
        }
    }

    private func launch() throws -> Running {
        let path = StaleMount.normalized(mountpoint)
        try StaleMount.recover(path, logger: logger)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        // Mounting hides what the directory holds (a hand-made /etc/kv, an old tree copied there):
        // nothing is lost, but nothing of it is seen until the tree unmounts.
        let shadowed = (try? FileManager.default.contentsOfDirectory(atPath: path).count) ?? 0
        shadowedEntries.store(shadowed, ordering: .relaxed)
        if let warning { logger.warning("\(warning)") }

        let values = ValueCache(budgetBytes: options.valueCacheBytes)
        let ctx = MountContext(
            node: node, scratch: ScratchNames(patterns: options.scratchPatterns), uid: options.uid, gid: options.gid,
            logger: logger, hiddenGraceMs: options.hiddenGraceMs, values: values, readerPageCache: options.readerPageCache)
        let core = MountCore(ctx: ctx, mountpoint: path, peers: options.peers)
        // Follow commits before reading the records, so nothing committed in between is missed (a
        // change seen twice is harmless: the truth is ordered by record version). The value cache
        // learns a change before the follower does: a reader woken by the replay of a change must
        // not be served the value it replaced.
        let inbox = ChangeInbox(wake: core.followerWake)
        let observation = node.store.observeCommits { [id = ObjectIdentifier(core)] changes in
            values.observe(changes)
            inbox.add(changes, quiet: OwnSave.isCurrent(changes, of: id))
        }
        // No request can come before the session exists, so reading the store under the lock
        // holds up nobody.
        let loaded = try core.state.withLock { (st: inout sending FSState) throws -> Int in try st.load(from: node.store) }
        // The pages of decoded records are free now; hand them back rather than keep them as
        // the agent's resident size for the life of the mount. The same for SQLite: the scan
        // mapped and cached the whole file in one reader connection (a million keys: 256 MiB).
        _ = malloc_trim(0)
        node.store.releaseReadMemory()

        var mountOptions = "fsname=kvgossip,subtype=kvgossip,default_permissions"
        if options.allowOther { mountOptions += ",allow_other" }
        let userdata = Unmanaged.passRetained(core)
        let session: FuseSession
        do {
            session = try FuseSession(mountpoint: path, options: mountOptions, userdata: userdata.toOpaque(), logger: logger)
        } catch {
            userdata.release()
            throw error
        }
        core.setSession(session.pointer)
        core.passthrough.setDevice(fuse_session_fd(session.pointer))
        session.startLoop { [weak self] in self?.sessionEnded(session) }
        let supervisor = HelperSupervisor(
            core: core, start: { [command = options.helperCommand, timeout = options.helperAnswerTimeoutMs] in
                try ReplayHelper.Child(command: command, mountpoint: path, answerTimeoutMs: timeout)
            },
            restarted: { [weak self] in _ = self?.helperRestartCount.add(1, ordering: .relaxed) })
        let follower = ChangeFollower(core: core, supervisor: supervisor, inbox: inbox)
        let device: UInt64
        do {
            device = try follower.start()
        } catch {
            core.setSession(nil)
            session.unmount()
            userdata.release()
            throw error
        }
        let connection = FuseConnections.number(ofDevice: device)
        session.connection = connection
        // Detached from its path (a lazy unmount), the mount would live on unseen: end its
        // connection, so the loop ends and the loss is handled like any other.
        let tableWatch = MountTableWatch(mountpoint: path, minor: connection) { [logger] in
            logger.warning("the mount left the mount table; ending its connection", metadata: ["mountpoint": "\(path)"])
            FuseConnections.abort(connection, logger: logger)
        }
        var mounted: Logger.Metadata = [
            "mountpoint": "\(path)", "records": "\(loaded)", "replay helper": "\(supervisor.pid.load(ordering: .relaxed))",
            "readers": "\(options.readerPageCache ? "page cache" : core.passthrough.active ? "passthrough" : "direct I/O")",
        ]
        if let wakeHere = FuseModule.wakeHere() { mounted["fuse wake_here"] = "\(wakeHere)" }
        if let windows = core.requestReader.windows { mounted["read turn polls"] = "\(windows)" }
        logger.info("mounted", metadata: mounted)
        return Running(
            core: core, session: session, follower: follower, tableWatch: tableWatch, userdata: userdata,
            observation: observation)
    }

    /// Ends everything of one mount. The follower first (it may be waiting on the helper, which
    /// fails at once if the mount is gone), and with it the helper, then the session.
    private func tearDown(_ run: Running, resolveHidden: Bool) {
        run.tableWatch.stop()
        run.observation.cancel()
        run.follower.stop()
        if resolveHidden { run.core.state.withLock { $0.resolveAllHidden() } }
        run.session.unmount()
        run.core.setSession(nil)
        run.userdata.release()
    }

    /// Unmounts cleanly and joins the threads. Keys renamed onto scratch names and not re-created
    /// are tombstoned first. Idempotent; safe to call from a signal-handling task.
    public func stop() {
        let previous = state.withLock { s -> Phase in
            defer {
                s.phase = .stopped
                s.generation += 1
            }
            return s.phase
        }
        remountWake.signal()
        guard case .mounted(let run) = previous else { return }
        tearDown(run, resolveHidden: true)
        logger.info("unmounted", metadata: ["mountpoint": "\(run.core.mountpoint)"])
    }

    /// True while the filesystem is mounted and served (false after `stop()`, or while it is lost).
    public var isMounted: Bool {
        state.withLock { s in
            if case .mounted(let run) = s.phase { return !run.session.hasExited }
            return false
        }
    }

    /// How many times the mount was unmounted from outside since `start()`.
    public var losses: Int { state.withLock { $0.losses } }

    /// How many times the replay helper ended and another was started (`HelperSupervisor`).
    public var helperRestarts: Int { helperRestartCount.load(ordering: .relaxed) }

    /// What the operator should know about the mount, for the log and `status`, or nil.
    public var warning: String? {
        let shadowed = shadowedEntries.load(ordering: .relaxed)
        guard shadowed > 0 else { return nil }
        return "the mountpoint \(mountpoint) was not empty: its \(shadowed) entr\(shadowed == 1 ? "y is" : "ies are") hidden while the tree is mounted"
    }

    /// What is wrong with the mount now, for `status`, or nil.
    public var problem: String? {
        state.withLock { s in
            if case .mounted(let run) = s.phase { return run.follower.supervisor.problem }
            guard case .lost(let since, let error) = s.phase else { return nil }
            let when = ISO8601DateFormatter().string(from: since)
            return "the mount at \(mountpoint) was unmounted from outside at \(when); remounting"
                + (error.map { " (last attempt failed: \($0))" } ?? "")
        }
    }

    // MARK: Losing the mount

    /// Called on the loop's thread when the session ends. After `stop()` that is expected; at any
    /// other time someone unmounted the tree (or aborted its connection) under a running agent.
    private func sessionEnded(_ session: FuseSession) {
        let (lost, generation) = state.withLock { s -> (Running?, Int) in
            guard case .mounted(let run) = s.phase, run.session === session else { return (nil, s.generation) }
            s.phase = .lost(since: Date(), error: nil)
            s.losses += 1
            return (run, s.generation)
        }
        guard let lost else { return }
        logger.error("the mount was unmounted from outside; mounting it again", metadata: ["mountpoint": "\(lost.core.mountpoint)"])
        // Not on the loop's thread: tearing down joins it.
        startNamedThread("kvg-remount") { [self] in
            tearDown(lost, resolveHidden: false)
            remount(generation: generation)
        }
    }

    /// Mounts again with backoff (0.5 s doubling to 30 s) until it works or `stop()` is called.
    private func remount(generation: Int) {
        var delay = 0.5
        while true {
            _ = remountWake.wait(timeout: .now() + delay)
            let outcome = state.withLock { (s: inout sending State) -> Bool? in
                guard s.generation == generation, case .lost(let since, _) = s.phase else { return nil }
                do {
                    s.phase = .mounted(try launch())
                    return true
                } catch {
                    s.phase = .lost(since: since, error: "\(error)")
                    return false
                }
            }
            switch outcome {
            case nil: return
            case true?:
                logger.notice("mounted again after the mount was lost", metadata: ["mountpoint": "\(mountpoint)"])
                return
            case false?:
                logger.warning("mounting again failed; retrying", metadata: ["mountpoint": "\(mountpoint)", "in": "\(delay * 2) s"])
                delay = min(delay * 2, 30)
            }
        }
    }
}

extension Mount {
    /// Keys hidden after a rename onto a scratch name and not yet resolved (tests only).
    func debugHiddenKeys() -> [String] {
        state.withLock { s in
            guard case .mounted(let run) = s.phase else { return [] }
            return run.core.state.withLock { Array($0.hidden.keys) }
        }
    }

    /// File handles the kernel has opened and not yet released (tests only): a save commits by
    /// RELEASE at the latest, so none open means every save so far has been committed.
    func debugOpenFileCount() -> Int {
        state.withLock { s in
            guard case .mounted(let run) = s.phase else { return 0 }
            return run.core.state.withLock { $0.files.count }
        }
    }

    /// Whether readers are given passthrough backings, and how many READ requests the mount has
    /// answered (tests only).
    func debugPassthrough() -> (active: Bool, readRequests: Int) {
        state.withLock { s in
            guard case .mounted(let run) = s.phase else { return (false, 0) }
            return (run.core.passthrough.active, run.core.readRequests.load(ordering: .relaxed))
        }
    }

    /// The replay helper's process id (tests only): stopping it holds a change made elsewhere
    /// between the store and its replay through the mount.
    func debugReplayHelper() -> pid_t? {
        state.withLock { s in
            guard case .mounted(let run) = s.phase else { return nil }
            let pid = run.follower.supervisor.pid.load(ordering: .relaxed)
            return pid == 0 ? nil : pid
        }
    }

    /// Paths the change follower is delivering a record to and whose delivery the helper has not
    /// opened yet (tests only).
    func debugDeliveriesInFlight() -> [String] {
        state.withLock { s in
            guard case .mounted(let run) = s.phase else { return [] }
            return run.core.state.withLock { Array($0.deliveries.keys) }
        }
    }

    /// How many times the change follower has been woken by a signal, not its timeout (tests only).
    func debugFollowerSignals() -> Int {
        state.withLock { s in
            guard case .mounted(let run) = s.phase else { return 0 }
            return run.follower.signalledWakeUps.load(ordering: .relaxed)
        }
    }

    /// The change follower's thread id (0 when not mounted or not started yet).
    func debugFollowerThread() -> Int32 {
        state.withLock { s in
            guard case .mounted(let run) = s.phase else { return 0 }
            return run.follower.threadID.load(ordering: .relaxed)
        }
    }
}
