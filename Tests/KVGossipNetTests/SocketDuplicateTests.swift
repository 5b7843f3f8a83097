import Foundation
import Glibc
import KVGossipNet
import KVGossipTestSupport
import NIOCore
import NIOPosix
import Testing

/// `SocketDuplicate` on real loopback connections: a NIO client channel and a plain socket a test
/// server accepted.
@Suite(.timeLimit(.minutes(2))) struct SocketDuplicateTests {
    /// A connection made by NIO, whose peer is a plain socket the test reads; `body` gets both.
    static func connected(_ body: (any Channel, RawSocket) async throws -> Void) async throws {
        let server = LoopbackServer.Holding()
        defer { server.release() }
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: server.port).get()
        defer { channel.close(promise: nil) }
        let peer = try #require(server.accepted(), "the server never accepted the connection")
        try await body(channel, peer)
    }

    /// The duplicate is the channel's own connection: what is sent through it reaches the peer,
    /// and it is a descriptor of its own, not the channel's.
    @Test func theDuplicateWritesToTheChannelsConnection() async throws {
        try await Self.connected { channel, peer in
            let socket = try #require(SocketDuplicate.of(channel))
            defer { socket.close() }
            #expect(socket.send(ByteBuffer(bytes: [1, 2, 3])) == .all)
            #expect(peer.read(exactly: 3) == [1, 2, 3])
            // A closed-on-exec copy: a child started by the agent never holds a link open.
            #expect(fcntl(socket.descriptor, F_GETFD) & FD_CLOEXEC != 0)
        }
    }

    /// A closed channel has nothing to duplicate; a connection the peer has closed reports the
    /// failure instead of raising SIGPIPE.
    @Test func aClosedConnectionIsReported() async throws {
        try await Self.connected { channel, peer in
            let socket = try #require(SocketDuplicate.of(channel))
            defer { socket.close() }
            shutdown(peer.fd, Int32(SHUT_RDWR))
            let failed = await Readiness.waitAsync(timeout: .seconds(10)) {
                if case .failed = socket.send(ByteBuffer(bytes: [0])) { return true }
                return false
            }
            #expect(failed, "sending to a closed connection never failed")
            // NIO may have closed it already, having read the peer's end.
            channel.close(promise: nil)
            try await channel.closeFuture.get()
            let again = SocketDuplicate.of(channel)
            again?.close()
            #expect(again == nil, "a closed channel still had a socket")
        }
    }

    /// A socket whose buffers are full takes part of a write, or none, and says how much.
    @Test func aFullSocketTakesWhatFits() async throws {
        try await Self.connected { channel, peer in
            let socket = try #require(SocketDuplicate.of(channel))
            defer { socket.close() }
            let chunk = ByteBuffer(repeating: 7, count: 1 << 20)
            var sent = 0
            var outcome = SocketDuplicate.Sent.all
            // The peer reads nothing, so the kernel's buffers (a few MiB at most) fill.
            for _ in 0..<256 {
                outcome = socket.send(chunk)
                guard outcome == .all else { break }
                sent += chunk.readableBytes
            }
            guard case .part(let taken) = outcome else {
                Issue.record("256 MiB went into a socket nobody reads: \(outcome)")
                return
            }
            #expect(taken < chunk.readableBytes)
            #expect(peer.read(exactly: sent + taken) != nil, "the peer could not read every byte the writes reported")
        }
    }

    /// An IPv6 connection is found by its endpoints as well (where this host has `::1`).
    @Test func anIPv6ConnectionIsFoundToo() async throws {
        let listener = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        try #require(listener >= 0)
        defer { Glibc.close(listener) }
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        address.sin6_addr = in6addr_loopback
        var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        let bound = withUnsafeMutablePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && listen(listener, 1) == 0 && getsockname(listener, $0, &length) == 0 }
        }
        // A host without IPv6 on its loopback has no such connection to find.
        guard bound else { return }
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "::1", port: Int(UInt16(bigEndian: address.sin6_port))).get()
        defer { channel.close(promise: nil) }
        let accepted = accept(listener, nil, nil)
        try #require(accepted >= 0)
        defer { Glibc.close(accepted) }
        let peer = RawSocket(borrowing: accepted, timeout: 5)
        let socket = try #require(SocketDuplicate.of(channel))
        defer { socket.close() }
        #expect(socket.send(ByteBuffer(bytes: [7, 8])) == .all)
        #expect(peer.read(exactly: 2) == [7, 8])
    }
}
