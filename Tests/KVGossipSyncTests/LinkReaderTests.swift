import Foundation
import KVGossipCore
import KVGossipTestSupport
import NIOCore
import NIOEmbedded
import Synchronization
import Testing
@testable import KVGossipSync

/// The reader that routes an established link's frames on its event loop (`LinkReader`): the
/// hand-over from the handshake's async sequence keeps the frames' order, reading stops while the
/// link's sessions are full, a large frame gives the loop a turn, and failures close the connection.
/// On an embedded channel, with the handler between a counter of the channel's reads (toward the
/// socket) and a collector standing in for the async sequence.
@Suite(.timeLimit(.minutes(2))) struct LinkReaderTests {
    /// Over a real link: a peer whose first messages arrive with its stream header, so they wait in
    /// the async sequence while the engine's handshake ends, has them all answered (each push in
    /// its own session, which the engine runs side by side: the answers' order is not fixed).
    @Test func messagesThatCameWithTheStreamHeaderAreAnswered() async throws {
        let s = try await ServedEngine { _ in }
        defer { s.stop() }
        let records = try (0..<3).map { i in
            Record(cluster: s.root.publicKey, key: try Key("/early/\(i)"), kind: .value, value: Array("v".utf8),
                   timestamp: HLC(physicalMs: UInt64(Date().timeIntervalSince1970 * 1000)), signer: s.root, pool: [])
        }
        let early = records.enumerated().flatMap { i, record -> [(session: UInt32, message: SyncMessage)] in
            let session = UInt32(2 * i + 1)
            return [(session, .open(.push, Self.hash(0))), (session, .records([record]))]
        }
        let (port, root) = (s.port, s.root)
        let answers = try await OwnThread.run {
            let speaker = try LinkSpeaker(
                port: port, cluster: root.publicKey, credentials: LinkSpeaker.credentials(root), timeout: 15, withHeader: early)
            return (0..<3).map { _ in speaker.receive() }
        }
        #expect(answers.compactMap { $0?.session }.sorted() == [1, 3, 5])
        #expect(answers.allSatisfy { if case .results(let r)? = $0?.message { r.map(\.code) == [.accepted] } else { false } })
        #expect(try records.map { try s.engine.node.store.record($0.key)?.digest } == records.map(\.digest))
    }

    /// Frames passed to the sequence before the hand-over are routed by the link's task; those that
    /// arrive after wait in the reader, with reading stopped, until it routes them after the
    /// sequence's. Sealed frames open only in order, so routing them out of order fails.
    @Test func framesHeldAtTheHandOverFollowThoseTheSequenceHolds() throws {
        let t = try Embedded()
        try t.channel.writeInbound(t.seal(0, .announce(Self.hash(1))))
        t.reader.holdFrames()
        try t.channel.writeInbound(t.seal(0, .announce(Self.hash(2))))
        let readsBefore = t.reads
        t.channel.read()
        #expect(t.sequence.count == 2, "the frame before the hand-over and the marker")
        #expect(t.sequence.last?.readableBytes == 0, "the marker is an empty frame")
        #expect(t.heard.isEmpty, "nothing is routed before the link's task hands over")
        #expect(t.reads == readsBefore, "the channel read while frames waited")

        _ = try t.router.receive(t.sequence[0])  // the task, up to the marker
        let ended = t.reader.route(with: t.router)
        #expect(t.heard == ["announced 1", "announced 2"])
        #expect(t.reads == readsBefore + 1, "reading did not resume once nothing waited")

        try t.channel.writeInbound(t.seal(0, .announce(Self.hash(3))))
        #expect(t.heard.last == "announced 3", "a frame after the hand-over is routed as it arrives")
        #expect(t.sequence.count == 2)
        _ = try t.channel.close().wait()
        try ended.wait()
    }

    /// While the link's sessions hold their bound of unhandled messages, the reader routes no more
    /// and the channel does not read; frames already decoded wait. Each message a session takes
    /// lets one more through, and reading resumes once none waits.
    @Test func readingStopsWhileTheSessionsHoldTheirBound() throws {
        var options = LinkOptions()
        options.queuedMessagesPerLink = 2
        let t = try Embedded(options: options)
        t.reader.holdFrames()
        _ = t.reader.route(with: t.router)
        let readsBefore = t.reads

        // The peer opens session 2 (its parity on a link this node dialed) and sends it three more.
        try t.channel.writeInbound(t.seal(2, .open(.full, Self.hash(9))))
        for n in 1...3 { try t.channel.writeInbound(t.seal(2, .done(Self.hash(UInt8(n))))) }
        #expect(t.link.unhandledMessages == 2, "routed past the bound")
        t.channel.read()
        #expect(t.reads == readsBefore, "the channel read while the sessions were full")

        t.link.took(2)
        t.channel.embeddedEventLoop.run()
        #expect(t.link.unhandledMessages == 2, "the waiting frame was not routed once there was room")
        #expect(t.reads == readsBefore, "read with the sessions full again")

        t.link.took(2)
        t.channel.embeddedEventLoop.run()
        #expect(t.link.unhandledMessages == 1)
        #expect(t.reads == readsBefore + 1, "reading did not resume")
        _ = try t.channel.close().wait()
    }

    /// After a frame of 64 KiB or more, the next waits for a later turn of the loop.
    @Test func aLargeFrameGivesTheLoopATurn() throws {
        let t = try Embedded()
        t.reader.holdFrames()
        try t.channel.writeInbound(t.seal(2, .open(.full, Self.hash(9))))
        let ids = (0..<2_100).map { Self.hash(UInt8(truncatingIfNeeded: $0)) }
        try t.channel.writeInbound(t.seal(2, .pull(records: ids, revocations: [])))
        try t.channel.writeInbound(t.seal(2, .done(Self.hash(1))))
        _ = t.reader.route(with: t.router)
        #expect(t.link.unhandledMessages == 1, "the large frame and no more")
        t.channel.embeddedEventLoop.run()
        #expect(t.link.unhandledMessages == 2)
        _ = try t.channel.close().wait()
    }

    /// An error reported after the hand-over (a frame over the limit, say) ends reading once the
    /// frames decoded before it are routed: the link's task gets it, and the connection closes.
    @Test func anErrorEndsReadingAfterTheFramesBeforeIt() throws {
        let t = try Embedded()
        t.reader.holdFrames()
        try t.channel.writeInbound(t.seal(0, .announce(Self.hash(1))))
        t.channel.pipeline.fireErrorCaught(Broken())
        let ended = t.reader.route(with: t.router)
        #expect(t.heard == ["announced 1"])
        #expect(throws: Broken.self) { try ended.wait() }
        #expect(!t.channel.isActive)
    }

    /// A frame that does not open after the hand-over fails the reader's future and closes the
    /// connection; nothing after it is routed.
    @Test func aFrameThatDoesNotOpenEndsTheLink() throws {
        let t = try Embedded()
        t.reader.holdFrames()
        let ended = t.reader.route(with: t.router)
        try t.channel.writeInbound(ByteBuffer(bytes: [1, 2, 3]))
        #expect(throws: SyncProtocolError.self) { try ended.wait() }
        #expect(!t.channel.isActive)
        #expect(t.heard.isEmpty)
    }

    /// Before the hand-over an empty frame is refused: it would read as the hand-over's marker.
    /// The sequence hears the error and the connection closes.
    @Test func anEmptyFrameBeforeTheHandOverClosesTheConnection() throws {
        let t = try Embedded()
        try t.channel.writeInbound(ByteBuffer())
        #expect(t.sequence.isEmpty)
        #expect(t.errors == 1)
        #expect(!t.channel.isActive)
    }

    /// A connection that ends before the hand-over completes the reader's future at once; frames
    /// that waited are routed first (a peer's last words).
    @Test func aConnectionThatEndedBeforeTheHandOverEndsTheReader() throws {
        let t = try Embedded()
        t.reader.holdFrames()
        try t.channel.writeInbound(t.seal(0, .announce(Self.hash(1))))
        _ = try t.channel.close().wait()
        try t.reader.route(with: t.router).wait()
        #expect(t.heard == ["announced 1"])
    }

    struct Broken: Error {}

    static func hash(_ n: UInt8) -> Hash256 { Hash256(bytes: [UInt8](repeating: n, count: 32))! }

    /// An embedded channel with the reader in place, and a link and router for it.
    final class Embedded {
        let channel = EmbeddedChannel()
        let reader: LinkReader
        let link: PeerLink
        let router: LinkFrameRouter
        private let counter = ReadCounter()
        private let collector = Collector()
        private let events = Events()
        private let sender = SecretStreamSender(key: [UInt8](repeating: 5, count: 32))

        init(options: LinkOptions = LinkOptions()) throws {
            link = PeerLinkRoutingTests.link(options: options) { _ in }
            reader = LinkReader(eventLoop: channel.eventLoop)
            try channel.pipeline.syncOperations.addHandler(counter)
            try channel.pipeline.syncOperations.addHandler(reader)
            try channel.pipeline.syncOperations.addHandler(collector)
            let events = events
            router = LinkFrameRouter(link: link, receiver: SecretStreamReceiver(key: [UInt8](repeating: 5, count: 32), header: sender.header)!) { _, event in
                switch event {
                case .announced(let hash): events.list.withLock { $0.append("announced \(hash.bytes[0])") }
                case .opened(let session, _, _): events.list.withLock { $0.append("opened \(session)") }
                }
            }
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        }

        /// What the async sequence got.
        var sequence: [ByteBuffer] { collector.frames }
        /// Errors the async sequence was told of.
        var errors: Int { collector.errors }
        /// Reads that reached the socket's end of the pipeline.
        var reads: Int { counter.reads }
        /// Announcements the router handed the link's owner.
        var heard: [String] { events.list.withLock { $0 }.filter { !$0.hasPrefix("opened") } }

        func seal(_ session: UInt32, _ message: SyncMessage) -> ByteBuffer {
            ByteBuffer(bytes: sender.seal(PeerLinkRoutingTests.frame(session, message)))
        }
    }

    final class Events: Sendable {
        let list = Mutex<[String]>([])
    }

    /// Stands in for NIO's async sequence: keeps the frames and counts the errors it is told.
    final class Collector: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        var frames: [ByteBuffer] = []
        var errors = 0
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { frames.append(unwrapInboundIn(data)) }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { errors += 1 }
    }

    /// Counts the reads that reach the socket's end of the pipeline.
    final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        var reads = 0
        func read(context: ChannelHandlerContext) {
            reads += 1
            context.read()
        }
    }
}
