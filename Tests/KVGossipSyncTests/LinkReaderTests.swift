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
    /// its own session, which the engine runs side by side: the answers' order is not fixed); and
    /// a push it sends after those answers is answered too. Six pushes are twelve frames, more than
    /// the sequence takes before NIO stops reading: the hand-over must not wait for a later read.
    @Test func messagesThatCameWithTheStreamHeaderAreAnsweredAndTheLinkReadsOn() async throws {
        let s = try await ServedEngine { _ in }
        defer { s.stop() }
        let records = try (0..<7).map { i in
            Record(cluster: s.root.publicKey, key: try Key("/early/\(i)"), kind: .value, value: Array("v".utf8),
                   timestamp: HLC(physicalMs: UInt64(Date().timeIntervalSince1970 * 1000)), signer: s.root, pool: [])
        }
        let early = records.prefix(6).enumerated().flatMap { i, record -> [(session: UInt32, message: SyncMessage)] in
            let session = UInt32(2 * i + 1)
            return [(session, .open(.push, Self.hash(0))), (session, .records([record]))]
        }
        let (port, root) = (s.port, s.root)
        let (answers, later) = try await OwnThread.run {
            let speaker = try LinkSpeaker(
                port: port, cluster: root.publicKey, credentials: LinkSpeaker.credentials(root), timeout: 15, withHeader: early)
            let answers = (0..<6).map { _ in speaker.receive() }
            return (answers, speaker.push([records[6]], session: 13))
        }
        #expect(answers.compactMap { $0?.session }.sorted() == [1, 3, 5, 7, 9, 11])
        #expect(answers.allSatisfy { if case .results(let r)? = $0?.message { r.map(\.code) == [.accepted] } else { false } })
        #expect(later?.map(\.code) == [.accepted], "the push after the first answers was not answered")
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

        try t.router.receive(t.sequence[0])  // the task, up to the marker
        let ended = t.reader.route(with: t.router)
        #expect(t.heard == ["announced 1", "announced 2"])
        #expect(t.reads == readsBefore + 1, "reading did not resume once nothing waited")

        // NIO's async channel holds the channel's read requests back once nobody reads its
        // sequence: the reader asks for the next read itself.
        t.sequenceHoldsReadsBack()
        let readsAfter = t.reads
        try t.channel.writeInbound(t.seal(0, .announce(Self.hash(3))))
        #expect(t.heard.last == "announced 3", "a frame after the hand-over is routed as it arrives")
        #expect(t.reads == readsAfter + 1, "no read after a read completed")
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

        // The peer opens session 2 (its parity on a link this node dialed) and sends it three more.
        try t.channel.writeInbound(t.seal(2, .open(.full, Self.hash(9))))
        for n in 1...3 { try t.channel.writeInbound(t.seal(2, .done(Self.hash(UInt8(n))))) }
        #expect(t.link.unhandledMessages == 2, "routed past the bound")
        let readsBefore = t.reads
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

    /// The bound counts bytes too: small messages under the message bound stop the reader once
    /// the bytes they hold decoded reach `queuedBytesPerLink`, and a message taken lets the next in.
    @Test func readingStopsWhileTheSessionsHoldTheirBytes() throws {
        var options = LinkOptions()
        let done = SyncMessage.done(Self.hash(1))
        let held = done.heldSize(frameBytes: 4 + SyncMessageCodec.encode(done).count)
        options.queuedBytesPerLink = 2 * held + 1  // room after two, none after three
        let t = try Embedded(options: options)
        t.reader.holdFrames()
        _ = t.reader.route(with: t.router)

        try t.channel.writeInbound(t.seal(2, .open(.full, Self.hash(9))))
        for n in 1...5 { try t.channel.writeInbound(t.seal(2, .done(Self.hash(UInt8(n))))) }
        #expect(t.link.unhandledMessages == 3, "routed past the bytes bound, or stopped before it")
        let readsBefore = t.reads
        t.channel.read()
        #expect(t.reads == readsBefore, "the channel read while the sessions held their bytes")

        t.link.took(2)
        t.channel.embeddedEventLoop.run()
        #expect(t.link.unhandledMessages == 3, "the waiting frame was not routed once there was room")
        _ = try t.channel.close().wait()
    }

    /// After a frame of 64 KiB or more, the next waits for the loop's next pass (a timer), and the
    /// channel does not read meanwhile.
    @Test func aLargeFrameGivesTheLoopATurn() throws {
        let t = try Embedded()
        t.reader.holdFrames()
        try t.channel.writeInbound(t.seal(2, .open(.full, Self.hash(9))))
        let ids = (0..<2_100).map { Self.hash(UInt8(truncatingIfNeeded: $0)) }
        try t.channel.writeInbound(t.seal(2, .pull(records: ids, revocations: [])))
        try t.channel.writeInbound(t.seal(2, .done(Self.hash(1))))
        let readsBefore = t.reads
        _ = t.reader.route(with: t.router)
        #expect(t.link.unhandledMessages == 1, "the large frame and no more")
        t.channel.read()
        t.channel.embeddedEventLoop.run()
        #expect(t.link.unhandledMessages == 1, "went on in the same pass of the loop")
        #expect(t.reads == readsBefore, "read during the turn")
        t.channel.embeddedEventLoop.advanceTime(by: LinkConnection.turn)
        #expect(t.link.unhandledMessages == 2)
        #expect(t.reads == readsBefore + 1, "reading did not resume after the turn")
        _ = try t.channel.close().wait()
    }

    /// Small frames count too: past 128 of them in one read batch (far under 64 KiB), the rest
    /// wait for a turn; a new read batch starts the count again.
    @Test func aFloodOfSmallFramesGivesTheLoopATurn() throws {
        let t = try Embedded()
        t.reader.holdFrames()
        _ = t.reader.route(with: t.router)
        let frames = (0..<1_500).map { t.seal(0, .announce(Self.hash(UInt8(truncatingIfNeeded: $0)))) }
        // Announcements are small: the frame count ends a turn before the bytes do.
        let perTurn = LinkConnection.yieldAfterFrames
        #expect(perTurn < LinkConnection.yieldAfterBytes / frames[0].readableBytes)
        // One read batch: frames with no read-complete between them.
        for frame in frames { t.channel.pipeline.fireChannelRead(NIOAny(frame)) }
        t.channel.pipeline.fireChannelReadComplete()
        #expect(t.heard.count == perTurn)
        t.channel.embeddedEventLoop.advanceTime(by: LinkConnection.turn)
        #expect(t.heard.count == min(2 * perTurn, frames.count))
        for _ in 0..<(frames.count / perTurn) { t.channel.embeddedEventLoop.advanceTime(by: LinkConnection.turn) }
        #expect(t.heard.count == frames.count)

        // Batches that each stay under the bounds take no turn, however many.
        for n in 0..<perTurn + 10 { try t.channel.writeInbound(t.seal(0, .announce(Self.hash(UInt8(truncatingIfNeeded: n))))) }
        #expect(t.heard.count == frames.count + perTurn + 10)
        _ = try t.channel.close().wait()
    }

    /// A reader that paused (for room) while NIO's async channel holds the channel's own read
    /// requests back reads again once it resumes: it asks for itself.
    @Test func aReaderThatPausedReadsAgainOnItsOwn() throws {
        let (t, _) = try Self.waitingForRoom()
        t.sequenceHoldsReadsBack()
        try t.channel.writeInbound(t.seal(2, .done(Self.hash(3))))
        let readsBefore = t.reads
        for _ in 0..<3 {
            t.link.took(2)
            t.channel.embeddedEventLoop.run()
        }
        #expect(t.link.unhandledMessages == 0)
        #expect(t.reads == readsBefore + 1, "the reader did not ask to read once it could")
        _ = try t.channel.close().wait()
    }

    /// A link closed while its reader waits for room wakes the reader, which routes on (and here
    /// fails: the closed link's sessions are gone) instead of waiting for ever.
    @Test func closingTheLinkWakesAReaderWaitingForRoom() throws {
        let (t, ended) = try Self.waitingForRoom()
        #expect(t.link.unhandledMessages == 1)
        t.link.close()
        t.channel.embeddedEventLoop.run()
        #expect(throws: SyncProtocolError.self) { try ended.wait() }
        #expect(!t.channel.isActive)
    }

    /// A connection that ends while the reader waits for room: what waited is routed at once, and
    /// an error reported meanwhile is what the link's task gets.
    @Test func aConnectionThatEndsWhileTheReaderWaitsRoutesTheRestAndReportsTheError() throws {
        let (t, ended) = try Self.waitingForRoom()
        t.channel.pipeline.fireErrorCaught(Broken())
        #expect(t.link.unhandledMessages == 1)
        _ = try t.channel.close().wait()
        #expect(t.link.unhandledMessages == 2, "what waited was not routed when the connection ended")
        #expect(throws: Broken.self) { try ended.wait() }
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

    /// A connection that ends before the hand-over, its pipeline gone (the handler removed),
    /// completes the reader's future at once; frames that waited are routed first (a peer's last
    /// words).
    @Test func aConnectionThatEndedBeforeTheHandOverEndsTheReader() throws {
        let t = try Embedded()
        t.reader.holdFrames()
        try t.channel.writeInbound(t.seal(0, .announce(Self.hash(1))))
        _ = try t.channel.close().wait()
        t.channel.embeddedEventLoop.run()
        #expect(throws: ChannelPipelineError.self) { try t.channel.pipeline.syncOperations.handler(type: LinkReader.self) }
        let ended = t.reader.route(with: t.router)
        #expect(t.heard == ["announced 1"])
        let outcome = Mutex<Result<Void, any Error>?>(nil)
        ended.whenComplete { result in outcome.withLock { $0 = result } }
        #expect(throws: Never.self) { try outcome.withLock { $0 }?.get() }
        #expect(outcome.withLock { $0 } != nil, "the reader's future did not complete")
    }

    struct Broken: Error {}

    /// A reader routing for a link whose sessions take one unhandled message: the peer opened
    /// session 2 and sent it two messages, so one is queued and one waits in the reader.
    static func waitingForRoom() throws -> (Embedded, EventLoopFuture<Void>) {
        var options = LinkOptions()
        options.queuedMessagesPerLink = 1
        let t = try Embedded(options: options)
        t.reader.holdFrames()
        let ended = t.reader.route(with: t.router)
        try t.channel.writeInbound(t.seal(2, .open(.full, Self.hash(9))))
        for n in 1...2 { try t.channel.writeInbound(t.seal(2, .done(Self.hash(UInt8(n))))) }
        return (t, ended)
    }

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
        func sequenceHoldsReadsBack() { collector.holdsReadsBack = true }
        /// Announcements the router handed the link's owner.
        var heard: [String] { events.list.withLock { $0 }.filter { !$0.hasPrefix("opened") } }

        func seal(_ session: UInt32, _ message: SyncMessage) -> ByteBuffer {
            ByteBuffer(bytes: sender.seal(PeerLinkRoutingTests.frame(session, message)))
        }
    }

    final class Events: Sendable {
        let list = Mutex<[String]>([])
    }

    /// Stands in for NIO's async sequence: keeps the frames and counts the errors it is told;
    /// when told to, holds the channel's read requests back, as NIO's does once nobody reads it.
    final class Collector: ChannelDuplexHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundIn = ByteBuffer
        var frames: [ByteBuffer] = []
        var errors = 0
        var holdsReadsBack = false
        func read(context: ChannelHandlerContext) { if !holdsReadsBack { context.read() } }
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
