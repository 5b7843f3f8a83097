import Foundation
import Glibc
import Synchronization

/// Small TCP (127.0.0.1) or Unix socket servers for tests that need a peer that misbehaves in a
/// known way. Each runs on threads of its own and stops (closing everything) on `stop()` or when
/// released.
///
/// The server owns every descriptor it makes: the listener, closed by `stop()` once the accepting
/// thread has left it, and each accepted connection, closed once its `serve` has returned (a
/// handler must not close it). A number closed twice, or used after its close, may by then belong
/// to another test's socket in this process (an event loop's, say).
public final class LoopbackServer: @unchecked Sendable {
    /// The TCP port (0 for a Unix socket server).
    public let port: Int
    /// The socket path of a Unix socket server.
    public let path: String?
    private let listener: Int32
    private let stopped = Atomic<Bool>(false)
    /// Accepted connections whose `serve` has not returned.
    private let open = Mutex<Set<Int32>>([])
    private let acceptEnded = DispatchSemaphore(value: 0)
    private let serve: @Sendable (Int32, LoopbackServer) -> Void

    /// Starts listening on a free TCP port; `serve` runs on its own thread for each accepted
    /// connection, with the connection's descriptor (closed by the server afterwards).
    public init(serve: @escaping @Sendable (Int32, LoopbackServer) -> Void) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        listener = fd
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        listen(fd, 16)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        port = Int(UInt16(bigEndian: addr.sin_port))
        path = nil
        self.serve = serve
        acceptLoop()
    }

    /// Starts listening on a Unix socket at `path` (replacing a stale file there); nil when the
    /// path is too long or cannot be bound.
    public init?(unixPath: String, serve: @escaping @Sendable (Int32, LoopbackServer) -> Void) {
        guard var addr = sockaddr_un(path: unixPath) else { return nil }
        unlink(unixPath)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard fd >= 0, bound == 0, listen(fd, 16) == 0 else {
            if fd >= 0 { close(fd) }
            return nil
        }
        listener = fd
        port = 0
        path = unixPath
        self.serve = serve
        acceptLoop()
    }

    private func acceptLoop() {
        Thread.detachNewThread { [self] in
            defer { acceptEnded.signal() }
            while !stopped.load(ordering: .relaxed) {
                let fd = accept(listener, nil, nil)
                guard fd >= 0 else { return }
                open.withLock { _ = $0.insert(fd) }
                Thread.detachNewThread { [self] in
                    serve(fd, self)
                    open.withLock {
                        $0.remove(fd)
                        shutdown(fd, Int32(SHUT_RDWR))
                        close(fd)
                    }
                }
            }
        }
    }

    deinit { stop() }

    /// Stops accepting and cuts every open connection off; their `serve` calls end as their reads
    /// fail. The listener is closed only after the accepting thread has left `accept` (the shutdown
    /// ends it), so that thread never accepts on a number that was reused.
    public func stop() {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        if acceptEnded.wait(timeout: .now() + 10) == .success { close(listener) }
        if let path { unlink(path) }
        open.withLock { for fd in $0 { shutdown(fd, Int32(SHUT_RDWR)) } }
    }

    /// A server that sends back every byte it receives.
    public static func echo() -> LoopbackServer {
        LoopbackServer { fd, _ in
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { return }
                guard buffer.withUnsafeBytes({ Glibc.send(fd, $0.baseAddress, n, Int32(MSG_NOSIGNAL)) }) == n else { return }
            }
        }
    }

    /// A server whose connections stay open, unread, until `release()`: the test reads and writes
    /// the one it accepted first through `accepted(timeout:)`.
    public final class Holding: Sendable {
        private final class First: Sendable { let fd = Mutex<Int32?>(nil) }
        private let server: LoopbackServer
        private let first = First()
        private let done = DispatchSemaphore(value: 0)
        public var port: Int { server.port }

        public init() {
            let first = self.first
            let done = self.done
            server = LoopbackServer { fd, _ in
                first.fd.withLock { if $0 == nil { $0 = fd } }
                done.wait()
                done.signal()
            }
        }

        /// The first connection accepted, borrowed (the server closes it); nil if none came in time.
        public func accepted(timeout: TimeInterval = 10, readTimeout: TimeInterval = 5) -> RawSocket? {
            guard Readiness.wait(timeout: timeout, { first.fd.withLock { $0 != nil } }) else { return nil }
            return RawSocket(borrowing: first.fd.withLock { $0! }, timeout: readTimeout)
        }

        /// Lets every connection's handler return, and stops the server (closing them).
        public func release() {
            done.signal()
            server.stop()
        }
    }

    /// A proxy to 127.0.0.1:`target` that keeps everything the client side sent, per connection.
    public static func recordingProxy(to target: Int, recording: Recording) -> LoopbackServer {
        LoopbackServer { client, _ in
            guard let upstream = RawSocket(tcpPort: target) else { return }
            let index = recording.streams.withLock { all -> Int in
                all.append([])
                return all.count - 1
            }
            // The thread carrying the answers holds `upstream` (so its descriptor stays open while
            // it reads), and this handler returns, and so lets the server close `client`, only
            // after that thread has finished with both.
            let answered = DispatchSemaphore(value: 0)
            Thread.detachNewThread {
                var buffer = [UInt8](repeating: 0, count: 65_536)
                while true {
                    let n = buffer.withUnsafeMutableBytes { recv(upstream.fd, $0.baseAddress, $0.count, 0) }
                    guard n > 0, buffer.withUnsafeBytes({ Glibc.send(client, $0.baseAddress, n, Int32(MSG_NOSIGNAL)) }) == n else { break }
                }
                shutdown(client, Int32(SHUT_RDWR))
                answered.signal()
            }
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { break }
                recording.streams.withLock { $0[index] += buffer[0..<n] }
                guard upstream.send(Array(buffer[0..<n])) else { break }
            }
            shutdown(upstream.fd, Int32(SHUT_RDWR))
            answered.wait()
        }
    }

    /// What a recording proxy's clients sent, one byte stream per connection.
    public final class Recording: Sendable {
        public let streams = Mutex<[[UInt8]]>([])
        public init() {}
        public var first: [UInt8] { streams.withLock { $0.first ?? [] } }
    }

    /// Splits a byte stream into KVGossip frames (u32 length, then the body).
    public static func frames(_ stream: [UInt8]) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var i = 0
        while i + 4 <= stream.count {
            let n = stream[i..<i + 4].reduce(0) { $0 << 8 | Int($1) }
            guard i + 4 + n <= stream.count else { break }
            out.append(Array(stream[i + 4..<i + 4 + n]))
            i += 4 + n
        }
        return out
    }
}
