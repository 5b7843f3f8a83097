import CFuse3
import Dispatch
import Foundation
import Glibc
import KVGossipStore
import Logging
import Synchronization

/// A mount left behind by a process that died without unmounting: `stat` answers ENOTCONN (or
/// hangs, if the process is stuck rather than dead). Found through /proc/self/mountinfo, because a
/// dead mount cannot be inspected through its path.
enum StaleMount {
    struct Entry {
        let mountPoint: String
        let fsType: String
        let minor: UInt32
    }

    enum Probe {
        case answers
        case failed(Int32)
        case hung
    }

    /// Removes stale FUSE mounts stacked at `mountpoint`; throws if a live one is there.
    static func recover(_ mountpoint: String, logger: Logger) throws {
        for _ in 0..<8 {
            guard let top = entries(at: mountpoint).last(where: isFuse) else { return }
            switch probe(mountpoint, timeout: 2) {
            case .answers:
                throw MountError.alreadyMounted("\(mountpoint) is already a live FUSE mount (\(top.fsType))")
            case .hung:
                logger.warning("mount at \(mountpoint) does not answer; aborting its connection")
                abortAndDetach(top, logger: logger)
            case .failed(let code):
                logger.warning("recovering stale mount", metadata: ["mountpoint": "\(mountpoint)", "errno": "\(code)"])
                abortAndDetach(top, logger: logger)
            }
        }
        throw MountError.mountFailed("could not clear the stale mounts at \(mountpoint)")
    }

    /// Aborts the mount's FUSE connection, if the kernel still has it, then detaches it. Aborting
    /// first fails every request still waiting on a daemon that will never answer (one that died
    /// holding the device, or hangs), so nothing stays blocked on the old mount once it is gone.
    @discardableResult
    static func abortAndDetach(_ entry: Entry, logger: Logger) -> String? {
        if FuseConnections.exists(entry.minor) { FuseConnections.abort(entry.minor, logger: logger) }
        return detach(entry.mountPoint, logger: logger)
    }

    /// `fusermount3 -uz`: a lazy unmount also works while something is still inside. Nil when
    /// detached, else why not.
    @discardableResult
    static func detach(_ mountpoint: String, logger: Logger) -> String? {
        if umount2(mountpoint, Int32(MNT_DETACH)) == 0 { return nil }
        var reason = String(cString: strerror(errno))
        // Without privileges, the setuid helper can do it for mounts this user made.
        let helper = Process()
        helper.executableURL = URL(fileURLWithPath: "/bin/fusermount3")
        helper.arguments = ["-uz", mountpoint]
        let said = Pipe()
        helper.standardError = said
        do {
            try helper.run()
            // Read to the end before waiting: a helper that filled the pipe would never exit.
            let message = said.fileHandleForReading.readDataToEndOfFile()
            helper.waitUntilExit()
            if helper.terminationStatus == 0 { return nil }
            let text = String(decoding: message.prefix(512), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if !text.isEmpty { reason += "; fusermount3: \(text)" }
        } catch {
            reason += "; fusermount3: \(error.localizedDescription)"
        }
        logger.error("cannot unmount stale mount", metadata: ["mountpoint": "\(mountpoint)", "error": "\(reason)"])
        return reason
    }

    /// The type KVGossip's mounts have in the mount table (`fsname=kvgossip,subtype=kvgossip`).
    static let fsType = "fuse.kvgossip"

    static func isFuse(_ entry: Entry) -> Bool { entry.fsType == "fuse" || entry.fsType.hasPrefix("fuse.") }

    /// statfs(2) on another thread, so a hung mount cannot hang the caller. Not stat(2): the
    /// kernel can answer stat of a dead mount's root from its attribute cache, while statfs always
    /// asks the filesystem process, so only a live one answers.
    static func probe(_ path: String, timeout: Double) -> Probe {
        let done = DispatchSemaphore(value: 0)
        let result = Mutex<Int32?>(nil)
        startNamedThread("kvg-mount-probe") {
            var info = statfs()
            let code: Int32 = statfs(path, &info) == 0 ? 0 : errno
            result.withLock { $0 = code }
            done.signal()
        }
        guard done.wait(timeout: .now() + timeout) == .success, let code = result.withLock({ $0 }) else { return .hung }
        return code == 0 ? .answers : .failed(code)
    }

    /// Mount entries whose mount point is `path`, in mount order (the last one is on top).
    static func entries(at path: String) -> [Entry] {
        guard let text = mountTable() else { return [] }
        let target = normalized(path)
        return text.split(separator: "\n").compactMap { line -> Entry? in
            let halves = line.components(separatedBy: " - ")
            guard halves.count == 2 else { return nil }
            let fields = halves[0].split(separator: " ")
            let tail = halves[1].split(separator: " ")
            guard fields.count >= 5, let fsType = tail.first, unescape(String(fields[4])) == target else { return nil }
            let device = fields[2].split(separator: ":")
            return Entry(mountPoint: target, fsType: String(fsType), minor: device.count == 2 ? UInt32(device[1]) ?? 0 : 0)
        }
    }

    /// The whole of /proc/self/mountinfo. Read to the end by hand: procfs reports a size of 0, and
    /// Foundation's `String(contentsOfFile:)` then returns only the first 4095 bytes, so on a host
    /// with a larger mount table (any systemd host with containers) a mount appended at the end was
    /// never found, and the mount was thought lost a moment after every mount.
    static func mountTable() -> String? {
        let fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { return nil }
            if n == 0 { break }
            bytes += chunk[..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The absolute path as mountinfo prints it. The parent is resolved (symlinks, `..`), the last
    /// component is not: resolving it would stat the possibly dead mount.
    static func normalized(_ path: String) -> String {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        var trimmed = absolute
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        let parent = (trimmed as NSString).deletingLastPathComponent
        let name = (trimmed as NSString).lastPathComponent
        guard let resolved = realpath(parent, nil) else { return trimmed }
        defer { free(resolved) }
        let base = String(cString: resolved)
        return base == "/" ? "/" + name : base + "/" + name
    }

    /// mountinfo escapes space, tab, newline and backslash as a backslash and three octal digits.
    static func unescape(_ field: String) -> String {
        let bytes = Array(field.utf8)
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "\\"), i + 3 < bytes.count,
                let code = UInt8(String(decoding: bytes[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                out.append(code)
                i += 4
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Clearing a KVGossip mount from outside the agent that served it (`kvgossip unmount`, the unit's
/// ExecStopPost).
public enum MountCleanup {
    /// What `unmount` found and did.
    public enum Outcome: Equatable, Sendable {
        case notMounted
        /// A live mount (an agent still serves it) was detached; that agent mounts it again.
        case detachedLive
        /// A dead or hung mount: its connection was aborted and the mount detached.
        case abortedAndDetached
        /// The FUSE mount there is another filesystem's (its type): left alone.
        case notKVGossip(String)
        /// The mount could not be detached (why: without privileges, most often).
        case failed(String)
    }

    /// Detaches every KVGossip mount stacked at `mountpoint`; a mount that does not answer has its
    /// connection aborted first. Another filesystem's FUSE mount on top is left alone, and a mount
    /// that stays attached is reported, not counted as done.
    public static func unmount(_ mountpoint: String, logger: Logger) -> Outcome {
        let path = StaleMount.normalized(mountpoint)
        var outcome = Outcome.notMounted
        for _ in 0..<8 {
            guard let top = StaleMount.entries(at: path).last(where: StaleMount.isFuse) else { break }
            guard top.fsType == StaleMount.fsType else { return outcome == .notMounted ? .notKVGossip(top.fsType) : outcome }
            let failure: String?
            if case .answers = StaleMount.probe(path, timeout: 2) {
                failure = StaleMount.detach(path, logger: logger)
                if outcome == .notMounted { outcome = .detachedLive }
            } else {
                failure = StaleMount.abortAndDetach(top, logger: logger)
                outcome = .abortedAndDetached
            }
            if let failure { return .failed(failure) }
        }
        return outcome
    }
}
