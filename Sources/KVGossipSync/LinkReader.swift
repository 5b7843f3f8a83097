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
/// another message (`LinkOptions.queuedMessagesPerLink`): otherwise the channel's reads are held
/// back, TCP pushes back on the peer, and the frames already decoded wait until the sessions take
/// some of theirs. After a large frame the loop's other work gets a turn before the next.
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
        /// Reading failed: nothing more is routed.
        case failed
    }

    private var mode = Mode.passing
    private var waiting = CircularBuffer<ByteBuffer>()
    /// The channel asked to read while this reader held reads back: it reads once nothing waits.
    private var readHeldBack = false
    /// Routing waits: for the sessions to make room, or for the turn taken after a large frame.
    private var paused = false
    /// Completed when the connection ends, or reading fails (`route(with:)`).
    private var ended: EventLoopPromise<Void>?
    /// Why reading failed while frames waited here: reported once they are routed.
    private var failure: (any Error)?
    private var inactive = false
    private var context: ChannelHandlerContext?
    private let eventLoop: any EventLoop

    init(eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        ended?.succeed()
        ended = nil
    }

    /// Frames from now on wait here, and reading stops; the marker goes into the async sequence
    /// behind every frame it holds. Call on the loop, once the link is established.
    func holdFrames() {
        guard let context, case .passing = mode else { return }
        mode = .holding
        // Reading resumes once routing has caught up, whether or not the channel asked meanwhile.
        readHeldBack = true
        context.fireChannelRead(wrapInboundOut(ByteBuffer()))
    }

    /// Routes the frames that waited here, then each frame as it arrives, until the connection
    /// ends (the future succeeds) or a frame cannot be routed (it fails with why, and the
    /// connection is closed). Call on the loop, once the sequence's frames up to the marker are
    /// routed.
    func route(with router: LinkFrameRouter) -> EventLoopFuture<Void> {
        let ended = eventLoop.makePromise(of: Void.self)
        guard case .holding = mode else {
            ended.succeed()
            return ended.futureResult
        }
        self.ended = ended
        mode = .routing(router)
        if let context { routeWaiting(context) }
        // What arrived before the connection ended is routed all the same (a peer's last words).
        if inactive || context == nil {
            self.ended?.succeed()
            self.ended = nil
        }
        return ended.futureResult
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch mode {
        case .passing:
            guard frame.readableBytes > 0 else { return fail(context, SyncProtocolError("the peer sent an empty frame")) }
            context.fireChannelRead(data)
        case .holding, .routing:
            waiting.append(frame)
            routeWaiting(context)
        case .failed:
            break
        }
    }

    func read(context: ChannelHandlerContext) {
        switch mode {
        case .passing:
            context.read()
        case .routing where waiting.isEmpty && !paused:
            context.read()
        case .holding, .routing, .failed:
            readHeldBack = true
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        inactive = true
        ended?.succeed()
        ended = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch mode {
        case .passing:
            context.fireErrorCaught(error)
        case .holding, .routing:
            // After the frames decoded before it.
            failure = failure ?? error
            routeWaiting(context)
        case .failed:
            break
        }
    }

    /// Routes what waits while the sessions have room; reads again once nothing waits.
    private func routeWaiting(_ context: ChannelHandlerContext) {
        guard case .routing(let router) = mode else { return }
        let loop = NIOLoopBound(self, eventLoop: context.eventLoop)
        let resume: @Sendable () -> Void = { loop.eventLoop.execute { loop.value.resume() } }
        while !paused, let frame = waiting.popFirst() {
            let opened: Int
            do { opened = try router.receive(frame) } catch { return fail(context, error) }
            if !router.link.whenRoomForMore(resume) {
                paused = true
            } else if opened >= LinkConnection.yieldAfterBytes {
                // Decrypting and decoding a few MiB takes milliseconds: the loop's other
                // connections go first.
                paused = true
                resume()
            }
        }
        guard !paused, waiting.isEmpty else { return }
        if let failure { return fail(context, failure) }
        if readHeldBack {
            readHeldBack = false
            context.read()
        }
    }

    private func resume() {
        guard let context else { return }
        paused = false
        routeWaiting(context)
    }

    /// Ends reading for `error`: the async sequence learns it while the handshake reads, the link's
    /// task (`route(with:)`'s future) after; the connection is closed either way.
    private func fail(_ context: ChannelHandlerContext, _ error: any Error) {
        if case .passing = mode { context.fireErrorCaught(error) }
        mode = .failed
        waiting.removeAll()
        ended?.fail(error)
        ended = nil
        context.close(promise: nil)
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

    /// Opens, decodes and routes `frame`; returns the opened message's size.
    func receive(_ frame: ByteBuffer) throws -> Int {
        link.bytesReceived.add(frame.readableBytes + 4, ordering: .relaxed)
        guard let plain = receiver.open(Array(frame.readableBytesView)) else {
            throw SyncProtocolError("a frame from \(link.peer.name) does not decrypt")
        }
        if let event = try link.route(plain) { inbound(link, event) }
        return plain.count
    }
}
