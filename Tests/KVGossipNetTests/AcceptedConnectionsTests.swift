import KVGossipNet
import KVGossipTestSupport
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// `AcceptedConnections` on a real loopback listener, spoken to by plain sockets on threads of their
/// own (`OwnThread.run`): the cooperative threads are left to the server under test.
@Suite(.timeLimit(.minutes(2))) struct AcceptedConnectionsTests {
    typealias Connection = NIOAsyncChannel<ByteBuffer, ByteBuffer>

    static func listen(_ accepted: AcceptedConnections<Connection>) async throws -> NIOAsyncChannel<Connection, Never> {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0) { channel in
                accepted.track(channel.eventLoop.makeCompletedFuture { try Connection(wrappingChannelSynchronously: channel) })
            }
    }

    /// Serving is cancelled while clients are still connecting, so NIO holds connections it
    /// accepted and has not yet handed over, and finishes setting up others after the listener has
    /// closed. Each of those used to be dropped unclosed and trap ("Deinited NIOAsyncWriter without
    /// calling finish()"), ending the test process within a few rounds. Every round, serving must
    /// return with no handler left running, and every client must find its connection closed.
    @Test func cancellingServeWhileClientsConnectClosesEveryConnection() async throws {
        let clients = 40
        for round in 0..<40 {
            let accepted = AcceptedConnections<Connection>()
            let listener = try await Self.listen(accepted)
            let port = try #require(listener.channel.localAddress?.port)
            let running = Atomic<Int>(0)
            let serving = Task {
                try await accepted.serve(listener) { connection in
                    running.add(1, ordering: .relaxed)
                    defer { running.subtract(1, ordering: .relaxed) }
                    // Reads until the client goes or the handler is cancelled.
                    try? await connection.executeThenClose { inbound, _ in for try await _ in inbound {} }
                }
            }
            // Cancelled after a different number of connections each round, to meet NIO at
            // different points of accepting them.
            let cancelAfter = clients / 4 + round % (clients / 2)
            let connected = try await OwnThread.run {
                (0..<clients).compactMap { i -> RawSocket? in
                    if i == cancelAfter { serving.cancel() }
                    // nil once the listener has closed: refused.
                    return RawSocket(tcpPort: port)
                }
            }
            let ended = await serving.result
            #expect(throws: Never.self, "round \(round)") { try ended.get() }
            #expect(running.load(ordering: .relaxed) == 0, "round \(round): a handler still ran after serve returned")
            // A byte first: a client whose handshake the kernel was finishing as the listener closed
            // has no socket left on the other side, and only data makes the kernel say so (a reset).
            let open = try await OwnThread.run { connected.filter { $0.send([0]) && $0.readUntilClosed() == nil }.count }
            #expect(open == 0, "round \(round): \(open) of \(connected.count) connections were left open")
        }
    }

    /// A listener whose set-up fails after its bind is never served: the connections NIO made for
    /// it meanwhile are closed with it (closing the listener alone left them to NIO, which traps).
    @Test func aListenerClosedUnservedClosesTheConnectionsItMade() async throws {
        for round in 0..<20 {
            let accepted = AcceptedConnections<Connection>()
            let listener = try await Self.listen(accepted)
            let port = try #require(listener.channel.localAddress?.port)
            let connected = try await OwnThread.run { (0..<20).compactMap { _ in RawSocket(tcpPort: port) } }
            await accepted.closeUnserved(listener)
            let open = try await OwnThread.run { connected.filter { $0.send([0]) && $0.readUntilClosed() == nil }.count }
            #expect(open == 0, "round \(round): \(open) of \(connected.count) connections were left open")
        }
    }

    /// Until it is cancelled, every connection goes to the handler; a listener that closes on its
    /// own ends serving once its handlers are done, without an error.
    @Test func servesEveryConnectionUntilTheListenerCloses() async throws {
        let accepted = AcceptedConnections<Connection>()
        let listener = try await Self.listen(accepted)
        let port = try #require(listener.channel.localAddress?.port)
        let serving = Task {
            try await accepted.serve(listener) { connection in
                try? await connection.executeThenClose { _, outbound in try await outbound.write(ByteBuffer(string: "hello")) }
            }
        }
        let answers = try await OwnThread.run { (0..<8).map { _ in RawSocket(tcpPort: port)?.readUntilClosed() } }
        #expect(answers.allSatisfy { $0 == Array("hello".utf8) })
        try await listener.channel.close()
        try await serving.value
    }
}
