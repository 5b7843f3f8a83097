import Foundation
import Glibc

/// How every child of ours is started (the embedded Serf, the mount's replay helper, an operator's
/// command): with exactly the descriptors named here, an empty signal mask and default handling of
/// the signals a kvgossip process catches or ignores.
///
/// Descriptors: SwiftNIO does not open its sockets close-on-exec, so a child started with
/// `posix_spawn` alone held whatever the parent had open. The mount's helper held the agent's sync
/// port and control socket; a template's `--exec` command held the template's connection to the
/// agent, and so would any daemon that command left behind, for as long as it ran. Signals: an
/// ignored disposition (SIGPIPE) or a blocked signal would pass to the child and to everything it
/// starts.
public struct Spawn: Sendable {
    /// One descriptor the child gets, set up in the order given.
    public enum Descriptor: Sendable {
        /// `path` opened on `fd`.
        case open(_ fd: Int32, path: String, flags: Int32, mode: mode_t = 0)
        /// Descriptor `source` as the child's `fd`: the parent's, as earlier actions left it (a
        /// `.copy(1, to: 2)` after an `.open(1, …)` copies the file just opened).
        case copy(_ source: Int32, to: Int32)

        var fd: Int32 {
            switch self {
            case .open(let fd, _, _, _): fd
            case .copy(_, let fd): fd
            }
        }
    }

    /// What the child gets. Descriptors 0–2 that are not named stay the parent's; every other
    /// descriptor is closed in the child.
    public var descriptors: [Descriptor]
    /// Starts the child as the leader of a process group of its own, so it and what it starts can
    /// be signalled together, and a terminal's Ctrl-C does not reach it before we decide how it
    /// leaves.
    public var ownProcessGroup: Bool
    /// The environment as `NAME=value`; nil passes this process's.
    public var environment: [String]?

    public init(descriptors: [Descriptor] = [.open(0, path: "/dev/null", flags: O_RDONLY)], ownProcessGroup: Bool = false, environment: [String]? = nil) {
        self.descriptors = descriptors
        self.ownProcessGroup = ownProcessGroup
        self.environment = environment
    }

    /// The signals set back to their default handling in the child.
    static let defaultSignals = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD]

    /// Starts `executable` with `arguments` (`argv[0]` first); its process id, or an error naming
    /// the executable.
    public func start(_ executable: String, arguments: [String]) throws(SpawnError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for descriptor in descriptors {
            switch descriptor {
            case .open(let fd, let path, let flags, let mode): posix_spawn_file_actions_addopen(&actions, fd, path, flags, mode)
            case .copy(let source, let fd): posix_spawn_file_actions_adddup2(&actions, source, fd)
            }
        }
        let targets = Set(descriptors.map(\.fd))
        let firstClosed = max(3, (targets.max() ?? 0) + 1)
        // Below the highest target, those not named; the C library ignores one that is not open.
        for fd in 3..<firstClosed where !targets.contains(fd) { posix_spawn_file_actions_addclose(&actions, fd) }
        if let closeFrom = addCloseFrom {
            _ = closeFrom(&actions, firstClosed)
        } else {
            // An older C library: close what is open now. One opened by another thread meanwhile
            // without close-on-exec (SwiftNIO accepts connections so) can slip through; glibc 2.34
            // and later have the call above.
            let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
            for fd in open.compactMap(Int32.init) where fd >= firstClosed { posix_spawn_file_actions_addclose(&actions, fd) }
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in Self.defaultSignals { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if ownProcessGroup {
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { $0.map { strdup($0) } + [nil] }
        defer { for pointer in argv + (envp ?? []) { free(pointer) } }
        var pid: pid_t = 0
        let rc = envp.map { posix_spawn(&pid, executable, &actions, &attributes, argv, $0) } ?? posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard rc == 0 else { throw SpawnError(executable: executable, code: rc) }
        return pid
    }
}

/// A child that could not be started.
public struct SpawnError: Error, CustomStringConvertible {
    public let executable: String
    public let code: Int32
    public var description: String { "cannot start \(executable): \(String(cString: strerror(code)))" }
}

/// glibc 2.34 and later have `posix_spawn_file_actions_addclosefrom_np`, but the Swift Glibc module
/// does not export it: it is looked up by name.
private let addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32)? = {
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else {
        return nil
    }
    return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32).self)
}()
