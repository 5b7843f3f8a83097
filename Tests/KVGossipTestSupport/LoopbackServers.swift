import Foundation
import Glibc
import Synchronization

/// Small TCP servers on 127.0.0.1 for tests that need a peer that misbehaves in a known way.
/// Each runs on threads of its own and stops (closing everything) on `stop()` or when released.
public final class LoopbackServer: @unchecked Sendable {
    public let port: Int
    private let listener: Int32
    private let stopped = Atomic<Bool>(false)
    private let open = Mutex<[Int32]>([])

    /// Starts listening; `serve` runs on its own thread for each accepted connection, with the
    /// connection's descriptor (closed by the server afterwards).
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
        Thread.detachNewThread { [self] in
            while !stopped.load(ordering: .relaxed) {
                let fd = accept(listener, nil, nil)
                guard fd >= 0 else { return }
                open.withLock { $0.append(fd) }
                Thread.detachNewThread { [self] in
                    serve(fd, self)
                    shutdown(fd, Int32(SHUT_RDWR))
                }
            }
        }
    }

    deinit { stop() }

    public func stop() {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        for fd in open.withLock({ $0 }) { shutdown(fd, Int32(SHUT_RDWR)) }
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

    /// A proxy to 127.0.0.1:`target` that keeps everything the client side sent, per connection.
    public static func recordingProxy(to target: Int, recording: Recording) -> LoopbackServer {
        LoopbackServer { client, _ in
            guard let upstream = RawSocket(tcpPort: target) else { return }
            let index = recording.streams.withLock { all -> Int in
                all.append([])
                return all.count - 1
            }
            let upstreamFD = upstream.fd
            let done = Atomic<Bool>(false)
            Thread.detachNewThread {
                var buffer = [UInt8](repeating: 0, count: 65_536)
                while !done.load(ordering: .relaxed) {
                    let n = buffer.withUnsafeMutableBytes { recv(upstreamFD, $0.baseAddress, $0.count, 0) }
                    guard n > 0, buffer.withUnsafeBytes({ Glibc.send(client, $0.baseAddress, n, Int32(MSG_NOSIGNAL)) }) == n else { break }
                }
                shutdown(client, Int32(SHUT_RDWR))
            }
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { break }
                recording.streams.withLock { $0[index] += buffer[0..<n] }
                guard upstream.send(Array(buffer[0..<n])) else { break }
            }
            done.store(true, ordering: .relaxed)
            shutdown(upstreamFD, Int32(SHUT_RDWR))
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
