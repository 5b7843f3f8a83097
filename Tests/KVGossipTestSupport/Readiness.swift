import Foundation
import Glibc

/// Waiting for a process under test by asking it, never by reading its log or sleeping a fixed
/// time. Each probe answers once, quickly; `Readiness.wait` repeats one until it holds.
public enum Readiness {
    /// Repeats `probe` until it returns true or `timeout` seconds pass. A probe that throws counts
    /// as "not yet" until the deadline; it is asked once more after the deadline (and may throw
    /// then), so a waiter that was itself delayed (a busy machine) never fails without having
    /// looked. Blocking: call it from a test body on its own threads (`.integration`).
    @discardableResult
    public static func wait(timeout: TimeInterval = 30, every interval: TimeInterval = 0.02, _ probe: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if (try? probe()) == true { return true }
            usleep(UInt32(interval * 1_000_000))
        }
        return try probe()
    }

    /// The async form, for tests whose bodies are async.
    @discardableResult
    public static func waitAsync(
        timeout: Duration = .seconds(30), every interval: Duration = .milliseconds(20), _ probe: () async throws -> Bool
    ) async rethrows -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if (try? await probe()) == true { return true }
            try? await Task.sleep(for: interval)
        }
        return try await probe()
    }

    /// Whether an agent answers `status` on its control socket at `path` within `timeout` — the
    /// agent with process id `pid`, when given (another agent may hold the socket).
    public static func controlAnswers(at path: String, pid: Int32? = nil, timeout: TimeInterval = 2) -> Bool {
        guard let reply = controlRequest(at: path, json: #"{"id":1,"op":"status"}"#, timeout: timeout) else { return false }
        guard reply.contains(#""ok":true"#) else { return false }
        guard let pid else { return true }
        return reply.contains("\"pid\":\(pid),") || reply.contains("\"pid\":\(pid)}")
    }

    /// Sends one control request (a JSON object) and returns the first answer's text, or nil if
    /// the socket is not there, refuses, or says nothing within `timeout`.
    public static func controlRequest(at path: String, json: String, timeout: TimeInterval = 2) -> String? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - floor(timeout)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        guard var addr = sockaddr_un(path: path) else { return nil }
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0 }
        }
        guard connected else { return nil }
        let body = Array(json.utf8)
        let length = UInt32(body.count).bigEndian
        let frame = withUnsafeBytes(of: length) { Array($0) } + body
        guard frame.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == frame.count else { return nil }
        guard let header = receive(fd, 4) else { return nil }
        let size = header.reduce(0) { $0 << 8 | Int($1) }
        guard size <= 64 << 20, let answer = receive(fd, size) else { return nil }
        return String(decoding: answer, as: UTF8.self)
    }

    static func receive(_ fd: Int32, _ count: Int) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + done, count - done, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return nil }
            done += n
        }
        return out
    }

    /// Whether `path` is a mounted KVGossip (FUSE) filesystem that answers: /proc/mounts lists it
    /// and `stat` of its root succeeds (which goes through the mount, so a mount that is listed
    /// but not served does not count).
    public static func mountAnswers(at path: String) -> Bool {
        let mounts = ProcFile.read("/proc/self/mounts") ?? ""
        let listed = mounts.split(separator: "\n").contains { line in
            let fields = line.split(separator: " ")
            return fields.count > 2 && fields[1] == path && fields[2].hasPrefix("fuse")
        }
        var st = stat()
        return listed && stat(path, &st) == 0
    }

}

/// What /proc says about a process.
public enum ProcessState {
    /// The state letter of `/proc/PID/stat` (R, S, D, T, Z …), nil once the process is gone.
    public static func of(_ pid: Int32) -> String? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        return text[text.index(after: close)...].split(separator: " ").first.map(String.init)
    }
}
