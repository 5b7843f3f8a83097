import KVGossipCore
import KVGossipNet
import NIOCore

/// Reads an established link on its connection's event loop: each frame the decoder hands up is
/// opened and routed in the turn of the loop that read it, with no async sequence and no task to
/// resume between the read and the route (Docs/architecture.md §Gossip, *Which thread does what on a
/// link*).
///
/// It sits right after the frame decoder from the connection's start (`LinkConnection.pipeline`),
/// because the handshake reads its frames through NIO's async sequence and frames may follow the
/// handshake's last one at once. The hand-over keeps their order:
/// 1. Until then it passes every frame on, to the sequence.
/// 2. `holdFrames` (on the loop) keeps what arrives from then on here, stops reading, and puts a
///    marker into the sequence behind whatever the sequence already holds: an empty frame, which
///    no peer can send through it (every frame of a link has bytes; an empty one closes it here).
/// 3. The link's task routes the sequence's frames up to the marker, then `route(with:)` routes
///    what waited here, and from then on every frame as it arrives.
///
/// While routing it reads only when nothing waits here and the link's sessions have room for
/// another message (`LinkOptions.queuedMessagesPerLink`, `queuedBytesPerLink`): otherwise the channel's reads are held
/// back, TCP pushes back on the peer, and the frames already decoded wait until the sessions take
/// some of theirs. Once it has routed 64 KiB of frames, or 128 frames, in one pass of the loop it
/// takes a turn: the loop polls its other connections before this link's next frame.
final class LinkReader: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Mode {
        /// The handshake's: frames go on to the async sequence.
        case passing
        /// Handed over, not yet routing: frames wait here.
        case holding
        case routing(LinkFrameRouter)
        /// Reading ended (the connection, or a frame that could not be routed): nothing more is routed.
        case over
    }

    private var mode = Mode.passing
    private var waiting = CircularBuffer<ByteBuffer>()
    /// The channel asked to read while this reader held reads back: it reads once nothing waits.
    private var readHeldBack = false
    /// Routing waits: for the sessions to make room, or for the loop's next pass (a turn).
    private var paused = false
    /// Bytes of frames, and frames, routed since this link's last read batch ended or its last turn.
    private var routedSinceTurn = 0
    private var framesSinceTurn = 0
    /// Completed when the connection ends, or reading fails (`route(with:)`).
    private var ended: EventLoopPromise<Void>?
    /// Why reading failed while frames waited here: reported once they are routed.
    private var failure: (any Error)?
    /// The connection ended: what waits is routed at once, then reading is over.
    private var inactive = false
    /// Nil once the handler is removed (after the connection ended).
    private var context: ChannelHandlerContext?
    private let eventLoop: any EventLoop

    init(eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        inactive = true
        routeWaiting()
    }

    /// Frames from now on wait here, and reading stops; the marker goes into the async sequence
    /// behind every frame it holds. Call on the loop, once the link is established.
    func holdFrames() {
        guard let context, case .passing = mode else { return }
        mode = .holding
        // Reading resumes once routing has caught up, whether or not the channel asked meanwhile.
        readHeldBack = true
        context.fireChannelRead(wrapInboundOut(ByteBuffer()))
        // NIO's async channel hands what it was given to the sequence when a read completes: without
        // this the marker would wait for the socket's next read, which never comes when the sequence
        // is full (NIO then stops reading, and this reader holds back the read that would resume it).
        context.fireChannelReadComplete()
    }

    /// Routes the frames that waited here, then each frame as it arrives, until the connection
    /// ends (the future succeeds) or a frame cannot be routed (it fails with why, and the
    /// connection is closed). Call on the loop, once the sequence's frames up to the marker are
    /// routed; the connection may have ended meanwhile (what waited is routed all the same).
    func route(with router: LinkFrameRouter) -> EventLoopFuture<Void> {
        let ended = eventLoop.makePromise(of: Void.self)
        guard case .holding = mode else {
            ended.succeed()
            return ended.futureResult
        }
        self.ended = ended
        mode = .routing(router)
        routeWaiting()
        return ended.futureResult
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch mode {
        case .passing:
            guard frame.readableBytes > 0 else { return fail(SyncProtocolError("the peer sent an empty frame")) }
            context.fireChannelRead(data)
        case .holding, .routing:
            waiting.append(frame)
            routeWaiting()
        case .over:
            break
        }
    }

    func read(context: ChannelHandlerContext) {
        switch mode {
        case .passing:
            context.read()
        case .routing where waiting.isEmpty && !paused:
            context.read()
        case .holding, .routing, .over:
            readHeldBack = true
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // The channel asks for the next read through NIO's async channel, which holds such requests
        // back once nobody reads its sequence: while routing, this reader asks for itself, now or
        // once it may read again.
        if case .routing = mode {
            routedSinceTurn = 0
            framesSinceTurn = 0
            if waiting.isEmpty, !paused {
                readHeldBack = false
                context.read()
            } else {
                readHeldBack = true
            }
        }
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        inactive = true
        routeWaiting()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch mode {
        case .passing:
            context.fireErrorCaught(error)
        case .holding, .routing:
            // After the frames decoded before it.
            failure = failure ?? error
            routeWaiting()
        case .over:
            break
        }
    }

    /// Routes what waits while the sessions have room, and reads again once nothing waits. Once
    /// the connection has ended, routes all that waits and ends reading.
    private func routeWaiting() {
        guard case .routing(let router) = mode else { return }
        let loop = NIOLoopBound(self, eventLoop: eventLoop)
        let resume: @Sendable () -> Void = { loop.eventLoop.execute { loop.value.resume() } }
        while inactive || !paused, let frame = waiting.popFirst() {
            do { try router.receive(frame) } catch { return fail(error) }
            if inactive { continue }
            routedSinceTurn += frame.readableBytes
            framesSinceTurn += 1
            if !router.link.whenRoomForMore(resume) {
                paused = true
            } else if routedSinceTurn >= LinkConnection.yieldAfterBytes || framesSinceTurn >= LinkConnection.yieldAfterFrames {
                // A large frame (decrypting and decoding a few MiB takes milliseconds) or a flood
                // of small ones: the loop's other connections go first. A timer, not `execute`:
                // NIO runs what is queued while it runs its tasks in the same pass, before it polls
                // its sockets; a deadline still ahead when the pass ends lets it poll first.
                routedSinceTurn = 0
                framesSinceTurn = 0
                paused = true
                eventLoop.scheduleTask(in: LinkConnection.turn) { loop.value.resume() }
            }
        }
        if inactive || (!paused && waiting.isEmpty), let failure { return fail(failure) }
        if inactive {
            mode = .over
            ended?.succeed()
            ended = nil
            return
        }
        if !paused, waiting.isEmpty, readHeldBack, let context {
            readHeldBack = false
            context.read()
        }
    }

    private func resume() {
        paused = false
        routeWaiting()
    }

    /// Ends reading for `error`: the async sequence learns it while the handshake reads, the link's
    /// task (`route(with:)`'s future) after; the connection is closed either way.
    private func fail(_ error: any Error) {
        if case .passing = mode { context?.fireErrorCaught(error) }
        mode = .over
        waiting.removeAll()
        ended?.fail(error)
        ended = nil
        context?.close(promise: nil)
    }
}

/// Opens and routes one link's received frames, for whichever reads them: the link's task until
/// the hand-over to its `LinkReader`, the reader on the event loop after. One at a time, in order
/// (the receiving stream's state moves with each frame), which the hand-over guarantees: the task
/// stops at the marker before the reader begins.
final class LinkFrameRouter: @unchecked Sendable {
    let link: PeerLink
    private let receiver: SecretStreamReceiver
    private let inbound: @Sendable (PeerLink, PeerLink.Inbound) -> Void

    init(link: PeerLink, receiver: SecretStreamReceiver, inbound: @escaping @Sendable (PeerLink, PeerLink.Inbound) -> Void) {
        self.link = link
        self.receiver = receiver
        self.inbound = inbound
    }

    /// Opens, decodes and routes `frame`.
    func receive(_ frame: ByteBuffer) throws {
        link.bytesReceived.add(frame.readableBytes + 4, ordering: .relaxed)
        guard let plain = receiver.open(Array(frame.readableBytesView)) else {
            throw SyncProtocolError("a frame from \(link.peer.name) does not decrypt")
        }
        if let event = try link.route(plain) { inbound(link, event) }
    }
}
