import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One agent per data directory: an exclusive `flock` on `DIR/agent.lock`, held for the process's
/// life (the kernel drops it when the process dies, however it dies). The file names the holder,
/// so a second agent can say which one is running instead of racing it for the store, the mount
/// and the Serf agent's pid file.
final class DataDirectoryLock: Sendable {
    static let fileName = "agent.lock"
    let path: String
    private let fd: Int32

    /// Takes the lock or throws, naming the agent that holds it.
    init(directory: String, controlSocket: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw CLIError("cannot create the data directory \(directory): \(Files.reason(error))")
        }
        path = URL(fileURLWithPath: directory).appendingPathComponent(Self.fileName).path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CLIError("cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            let holder = Self.describe(fd)
            close(fd)
            if code == EWOULDBLOCK {
                throw CLIError("another agent is already running on the data directory \(directory) (\(holder)); stop it first, or give this one its own --data")
            }
            throw CLIError("cannot lock \(path): \(String(cString: strerror(code)))")
        }
        self.fd = fd
        let text = "pid \(getpid())\ncontrol \(controlSocket)\n"
        _ = ftruncate(fd, 0)
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    deinit { close(fd) }

    /// "pid N, control socket S" from the holder's lock file, as far as it can be read.
    private static func describe(_ fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return "its pid is not recorded yet" }
        var fields: [String: String] = [:]
        for line in String(decoding: buffer[0..<n], as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
        }
        return [fields["pid"].map { "pid \($0)" }, fields["control"].map { "control socket \($0)" }]
            .compactMap { $0 }.joined(separator: ", ")
    }
}
