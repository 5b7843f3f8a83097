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

/// The node's tree as a FUSE filesystem (Docs/contract.md §Filesystem view): keys are files, prefixes
/// directories; writing a file mints one signed record at close; changes stored by anyone else are replayed
/// through the mountpoint so inotify watchers see them. See Docs/filesystem.md.
public final class Mount: Sendable {
    private struct Running {
        let core: MountCore
        let session: FuseSession
        let follower: ChangeFollower
        let userdata: Unmanaged<MountCore>
        let observation: CommitObservation
    }

    private let node: Node
    private let mountpoint: String
    private let options: MountOptions
    private let logger: Logger
    private let running = Mutex<Running?>(nil)

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
    /// loop and the change follower, and returns once the mount answers. Does nothing if started.
    public func start() throws {
        try running.withLock { (current: inout sending Running?) throws in
            guard current == nil else { return }
            current = try launch()
        }
    }

    private func launch() throws -> Running {
        let path = StaleMount.normalized(mountpoint)
        try StaleMount.recover(path, logger: logger)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)

        let values = ValueCache(budgetBytes: options.valueCacheBytes)
        let observation = node.store.observeCommits { values.observe($0) }
        let ctx = MountContext(
            node: node, scratch: ScratchNames(patterns: options.scratchPatterns), uid: options.uid, gid: options.gid,
            logger: logger, hiddenGraceMs: options.hiddenGraceMs, values: values, readerPageCache: options.readerPageCache)
        let core = MountCore(ctx: ctx, mountpoint: path, peers: options.peers)
        // Subscribe before reading the records, so nothing committed in between is missed (a
        // change seen twice is harmless: the truth is ordered by record version).
        let changes = node.store.changes()
        let records = try node.store.records(under: nil)
        core.state.withLock { $0.load(records) }

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
        session.startLoop()
        do {
            try session.waitUntilAnswering(timeout: 10)
        } catch {
            core.setSession(nil)
            session.unmount()
            userdata.release()
            throw error
        }
        let follower = ChangeFollower(core: core)
        follower.start(stream: changes)
        logger.info("mounted", metadata: ["mountpoint": "\(path)", "keys": "\(records.count)"])
        return Running(core: core, session: session, follower: follower, userdata: userdata, observation: observation)
    }

    /// Unmounts cleanly and joins the threads. Keys renamed onto scratch names and not re-created
    /// are tombstoned first. Idempotent; safe to call from a signal-handling task.
    public func stop() {
        running.withLock { current in
            guard let run = current else { return }
            current = nil
            run.follower.stop()
            run.observation.cancel()
            run.core.state.withLock { $0.resolveAllHidden() }
            run.session.unmount()
            run.core.setSession(nil)
            run.userdata.release()
            logger.info("unmounted", metadata: ["mountpoint": "\(run.core.mountpoint)"])
        }
    }

    /// True while the filesystem is mounted and served (false after `stop()`, or if it was
    /// unmounted from outside).
    public var isMounted: Bool {
        running.withLock { $0.map { !$0.session.hasExited } ?? false }
    }
}

extension Mount {
    /// Keys hidden after a rename onto a scratch name and not yet resolved (tests only).
    func debugHiddenKeys() -> [String] {
        running.withLock { $0?.core.state.withLock { Array($0.hidden.keys) } } ?? []
    }

    /// File handles the kernel has opened and not yet released (tests only): a save commits by
    /// RELEASE at the latest, so none open means every save so far has been committed.
    func debugOpenFileCount() -> Int {
        running.withLock { $0?.core.state.withLock { $0.files.count } } ?? 0
    }
}
