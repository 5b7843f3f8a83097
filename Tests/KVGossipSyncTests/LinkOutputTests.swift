import Foundation
import Glibc
import KVGossipCore
import KVGossipNet
import KVGossipTestSupport
import NIOCore
import NIOPosix
import Testing
@testable import KVGossipSync

/// `LinkOutput` on a real loopback connection made by NIO as a link's is (`framedAsyncChannel`),
/// whose peer is a plain socket the test reads and opens frame by frame with the link's receiving
/// stream.
@Suite(.timeLimit(.minutes(2))) struct LinkOutputTests {
    static let key = [UInt8](repeating: 9, count: 32)

    struct Link {
        let channel: any Channel
        /// Where the handshake writes its frames (`LinkOpening`).
        let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
        let output: LinkOutput
        let peer: RawSocket
        let receiver: SecretStreamReceiver

        /// The next frame the peer reads, opened; nil when none came within the socket's timeout.
        func next() -> [UInt8]? { peer.readFrame().flatMap(receiver.open) }
    }

    static func link(backlogLimit: Int = 1 << 20, _ body: (Link) async throws -> Void) async throws {
        let server = LoopbackServer.Holding()
        defer { server.release() }
        // A loop of the test's own, since the tests hold it busy.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            try await run(on: group, server: server, backlogLimit: backlogLimit, body)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try? await group.shutdownGracefully()
    }

    private static func run(
        on group: MultiThreadedEventLoopGroup, server: LoopbackServer.Holding, backlogLimit: Int, _ body: (Link) async throws -> Void
    ) async throws {
        let connection = try await ClientBootstrap(group: group)
            .connect(host: "127.0.0.1", port: server.port) { channel in channel.framedAsyncChannel(maxFrameBytes: 8 << 20) }
        try await connection.executeThenClose { _, outbound in
            let channel = connection.channel
            let peer = try #require(server.accepted(), "the server never accepted the connection")
            let sender = SecretStreamSender(key: key)
            let output = LinkOutput(channel: channel, sender: sender, backlogLimit: backlogLimit, direct: true)
            defer { output.close() }
            let receiver = try #require(SecretStreamReceiver(key: key, header: sender.header))
            try await body(Link(channel: channel, outbound: outbound, output: output, peer: peer, receiver: receiver))
        }
    }

    /// Holds `loop` busy until the returned function is called.
    static func hold(_ loop: any EventLoop) -> @Sendable () -> Void {
        let held = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        loop.execute {
            held.signal()
            release.wait()
        }
        held.wait()
        return { release.signal() }
    }

    /// Once the first frames have gone through the event loop, frames leave from the thread that
    /// sends them: they reach the peer while the connection's event loop is held busy.
    @Test func framesLeaveWithoutWakingTheEventLoop() async throws {
        try await Self.link { link in
            _ = link.output.send([[1, 2, 3]])
            #expect(link.next() == [1, 2, 3])
            // The first write's completion ran on the loop before this task does.
            try await link.channel.eventLoop.submit {}.get()
            let release = Self.hold(link.channel.eventLoop)
            defer { release() }
            #expect(link.output.send([[4], [5, 6]]) != nil)
            #expect(link.next() == [4], "a frame waited for the event loop")
            #expect(link.next() == [5, 6])
        }
    }

    /// The handshake's last frames may still wait on the event loop when the link starts sending
    /// (NIO's outbound writer hands them to the loop and returns): the first frames go behind them,
    /// through the loop, and never overtake them.
    @Test func framesTheLoopStillHoldsStayFirst() async throws {
        try await Self.link { link in
            let release = Self.hold(link.channel.eventLoop)
            try await link.outbound.write(ByteBuffer(bytes: [42]))
            #expect(link.output.send([[1]]) != nil)
            release()
            #expect(link.peer.readFrame() == [42], "a sealed frame overtook one the loop held")
            #expect(link.next() == [1])
        }
    }

    /// What the socket does not take at once goes through the event loop, and so does everything
    /// sent while it waits: the peer, reading only once its buffers are full, opens every frame in
    /// the order sealed (the receiving stream opens nothing out of order). With a backlog limit of
    /// one byte, the bytes left to the loop show as a stall while the peer reads nothing.
    @Test func whatTheSocketCannotTakeFollowsInOrder() async throws {
        try await Self.link(backlogLimit: 1) { link in
            _ = link.output.send([[0]])
            #expect(link.next() == [0])
            try await link.channel.eventLoop.submit {}.get()
            let frames = (1...24).map { i in [UInt8](repeating: UInt8(i), count: 1 << 20) }
            for frame in frames { #expect(link.output.send([frame]) != nil) }
            #expect(link.output.isStalled(longerThan: .zero), "every byte fit in the socket: nothing was left to the event loop")
            for frame in frames {
                guard let read = link.next() else {
                    Issue.record("frame \(frame[0]) did not arrive or did not open")
                    return
                }
                #expect(read == frame)
            }
            #expect(link.output.send([[25]]) != nil)
            #expect(link.next() == [25])
        }
    }

    /// When NIO closes the connection on its own (an idle timeout, the peer's end), the link's
    /// socket goes with it: the peer sees the end at once, without waiting for the link to close
    /// its output, and nothing written afterwards reaches it.
    @Test func aConnectionNIOClosesEndsAtOnce() async throws {
        try await Self.link { link in
            _ = link.output.send([[1]])
            #expect(link.next() == [1])
            try await link.channel.eventLoop.submit {}.get()
            try await link.channel.close()
            // Callbacks run in the order they were added: the output's ran before this returns.
            try await link.channel.closeFuture.get()
            _ = link.output.send([[2]])
            #expect(link.peer.readUntilClosed() == [], "the peer got more bytes, or no end, after NIO closed the connection")
        }
    }

    /// A connection NIO closes while frames wait on its loop for a peer that reads nothing: what
    /// the peer then reads is frames in sealing order up to where the stream broke off, never a
    /// frame sealed later written after the gap.
    @Test func framesAfterABrokenOffStreamAreNotWritten() async throws {
        try await Self.link { link in
            _ = link.output.send([[0]])
            #expect(link.next() == [0])
            try await link.channel.eventLoop.submit {}.get()
            for i in 1...16 { _ = link.output.send([[UInt8](repeating: UInt8(i), count: 1 << 20)]) }
            try await link.channel.close()
            try await link.channel.closeFuture.get()
            _ = link.output.send([[99]])
            var expected: UInt8 = 1
            while let frame = link.peer.readFrame() {
                guard let plain = link.receiver.open(frame) else {
                    Issue.record("a frame after frame \(expected - 1) does not open: out of order")
                    return
                }
                #expect(plain.first == expected)
                expected += 1
            }
            #expect(link.peer.readUntilClosed() != nil, "the connection stayed open after NIO closed it")
        }
    }

    /// A link whose pipeline seals frames again (a cluster-secret stream) writes only through it.
    @Test func aPipelineThatSealsAgainIsNotWrittenPast() async throws {
        try await Self.link { link in
            let channel = link.channel
            #expect(await LinkOutput.mayWriteDirectly(channel))
            try await channel.eventLoop.submit {
                try channel.pipeline.syncOperations.addHandler(SecretStreamHandler(secret: ClusterSecret(text: ClusterSecret.generate())!))
            }.get()
            #expect(!(await LinkOutput.mayWriteDirectly(channel)))
        }
    }
}
