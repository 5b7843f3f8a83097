import Foundation
import Glibc

/// A plain blocking socket for tests that speak to an agent byte by byte (hostile input).
public final class RawSocket: @unchecked Sendable {
    public let fd: Int32
    /// Whether this socket closes `fd` when released (not when it borrowed a server's connection).
    private var owns = true

    /// Reads and writes a descriptor someone else owns and closes (a connection a test server
    /// accepted).
    public init(borrowing fd: Int32, timeout: TimeInterval = 10) {
        self.fd = fd
        owns = false
        RawSocket.setTimeouts(fd, timeout)
    }

    /// Connects to 127.0.0.1:`port`, from the loopback address `source` when given (any of
    /// 127.0.0.0/8, so a test can play many hosts); nil if nobody accepts.
    ///
    /// Every `return nil` below leaves the close to `deinit`: the object is whole once `fd` is set,
    /// so it is released, and closes `fd`, on the way out. A close here as well closed the number a
    /// second time, after another thread could have been given it (an event loop's socket, say).
    public init?(tcpPort port: Int, timeout: TimeInterval = 10, from source: String? = nil) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { owns = false; return nil }
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = inet_addr(source)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else {
                return nil
            }
        }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        RawSocket.setTimeouts(fd, timeout)
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0 else {
            return nil
        }
    }

    /// Connects to the Unix socket at `path`; nil if nobody accepts.
    public init?(unixPath path: String, timeout: TimeInterval = 10) {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { owns = false; return nil }
        guard var addr = sockaddr_un(path: path) else {
            return nil
        }
        RawSocket.setTimeouts(fd, timeout)
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard ok == 0 else {
            return nil
        }
    }

    deinit { if owns { close(fd) } }

    private static func setTimeouts(_ fd: Int32, _ timeout: TimeInterval) {
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - floor(timeout)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Writes all of `bytes`; false if the peer closed or the write timed out.
    @discardableResult
    public func send(_ bytes: [UInt8]) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            done += n
        }
        return true
    }

    /// Sends one frame: a u32 big-endian length, then the bytes (KVGossip's framing).
    @discardableResult
    public func sendFrame(_ body: [UInt8]) -> Bool { send(Self.frame(body)) }

    /// `body` as one frame on the wire.
    public static func frame(_ body: [UInt8]) -> [UInt8] {
        let n = UInt32(body.count)
        return [UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] + body
    }

    /// Reads one frame; nil when the peer closed or the receive timeout passed.
    public func readFrame(maxBytes: Int = 64 << 20) -> [UInt8]? {
        guard let header = read(exactly: 4) else { return nil }
        let n = header.reduce(0) { $0 << 8 | Int($1) }
        guard n <= maxBytes else { return nil }
        return read(exactly: n)
    }

    /// Reads exactly `count` bytes; nil when the peer closed first or the timeout passed.
    public func read(exactly count: Int) -> [UInt8]? {
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

    /// Reads until the peer closes the connection; returns what it sent, or nil if it was still
    /// open when the receive timeout passed.
    public func readUntilClosed() -> [UInt8]? {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n == 0 { return out }
            if n < 0 { return errno == ECONNRESET ? out : nil }
            out += buffer[0..<n]
        }
    }
}
