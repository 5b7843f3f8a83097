import KVGossipCore
import KVGossipNet
import Logging
import NIOCore
import NIOPosix

/// One TCP connection's life as a link: the handshake (bounded by a deadline), the admission of the
/// peer, the stream headers, then the reader and the writer until either side closes.
enum LinkConnection {
    /// A link's reader routes at most this many bytes of frames, or this many frames, from one
    /// read batch before the loop's other connections get a turn (`LinkReader`). Bytes bound the
    /// work of large frames (decrypting and decoding costs by the byte); the count bounds that of
    /// small ones, each of which costs its routing whatever its size (64 KiB of announcements is
    /// over a thousand frames).
    static let yieldAfterBytes = 64 * 1024
    static let yieldAfterFrames = 128
    /// How long a turn lasts at least: long enough that the loop polls its sockets before the
    /// reader goes on (`LinkReader`), short beside the work of the 64 KiB before it.
    static let turn = TimeAmount.microseconds(100)

    struct Context: Sendable {
        let cluster: PublicKey
        let credentials: LinkCredentials
        let options: LinkOptions
        /// Nil when the peer may be a peer; otherwise why not (`Admission`, against the node's
        /// current revocations and clock).
        let admit: @Sendable (LinkIdentity) -> Refusal?
        /// Begins the checks of pulled records before their session reaches them.
        var precheck: @Sendable ([Record]) -> Void = { _ in }
        let logger: Logger
    }

    /// The frame limit a link connection starts with: its handshake's frames fit, a whole message
    /// does not (`LinkConnection.run` raises it once the peer is admitted).
    static func openingFrameLimit(_ options: LinkOptions) -> FrameLimit {
        FrameLimit(min(LinkHandshake.maxFrameBytes, options.maxFrameBytes))
    }

    /// A link connection's pipeline, set up before it reads anything: the framed channel whose
    /// async sequence the handshake reads, and after the frame decoder the `LinkReader` that takes
    /// over once the link is established.
    static func pipeline(_ channel: any Channel, frameLimit: FrameLimit, options: LinkOptions) -> EventLoopFuture<NIOAsyncChannel<ByteBuffer, ByteBuffer>> {
        channel.framedAsyncChannel(frameLimit: frameLimit, readTimeout: options.idleTimeout).flatMapThrowing { framed in
            let decoder = try channel.pipeline.syncOperations.context(handlerType: ByteToMessageHandler<FrameDecoder>.self)
            try channel.pipeline.syncOperations.addHandler(LinkReader(eventLoop: channel.eventLoop), position: .after(decoder.handler))
            return framed
        }
    }

    /// Runs the connection until it closes. `established` gets the link once both sides are
    /// authenticated and admitted; `inbound` gets the sessions and announcements the peer sends.
    /// `frameLimit` is the one the connection's decoder reads (`openingFrameLimit`); `channel` is
    /// set up by `pipeline`.
    static func run(
        _ channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>, frameLimit: FrameLimit, role: LinkHandshake.Role, remoteHost: String,
        context: Context, vouched: @escaping @Sendable () -> Void = {},
        established: @escaping @Sendable (PeerLink) -> Void, inbound: @escaping @Sendable (PeerLink, PeerLink.Inbound) -> Void
    ) async throws {
        // A connection that has not finished its handshake by the deadline is closed: a stranger
        // (or a slow sender) holds its slot for that long at most.
        let underlying = channel.channel
        let deadline = underlying.eventLoop.scheduleTask(in: context.options.handshakeTimeout) { underlying.close(promise: nil) }
        try await channel.executeThenClose { frames, outbound in
            var iterator = frames.makeAsyncIterator()
            let handshake = LinkHandshake(
                role: role, cluster: context.cluster, credentials: context.credentials, secret: context.options.secret,
                ephemeral: .generate(), nonce: secureRandomBytes(LinkHandshake.nonceBytes), limits: context.options.limits)
            let opened = try await LinkOpening.open(
                handshake, frames: &iterator, outbound: outbound, admit: context.admit, vouched: vouched,
                admitted: { frameLimit.raise(to: context.options.maxFrameBytes) })
            let (sender, receiver) = (opened.sender, opened.receiver)
            deadline.cancel()
            let address = PeerAddress(host: remoteHost, port: Int(opened.peer.syncPort))
            let output = LinkOutput(
                channel: underlying, sender: sender, backlogLimit: context.options.sendBacklogBytes,
                direct: await LinkOutput.mayWriteDirectly(underlying))
            let link = PeerLink(
                peer: opened.peer, address: address, initiatedHere: role == .initiator, peerClockOffsetMs: opened.peerClockOffsetMs,
                options: context.options, output: output, logger: context.logger,
                precheck: context.precheck, disconnect: { underlying.close(promise: nil) })
            established(link)
            defer { link.close() }
            let router = LinkFrameRouter(link: link, receiver: receiver, inbound: inbound)
            // The link's task reads until the hand-over, on the connection's event loop (`EventLoopThread`).
            try await withTaskExecutorPreference(EventLoopThread(underlying.eventLoop)) {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    // The watchdog: wakes the sessions now and then, so one whose peer went quiet fails.
                    group.addTask {
                        while !Task.isCancelled {
                            try? await Task.sleep(for: context.options.sessionStallTimeout / 4)
                            link.nudgeSessions()
                        }
                    }
                    defer {
                        link.close()
                        group.cancelAll()
                    }
                    // The handshake read through the async sequence, which may hold frames that
                    // followed it: they are routed here, then the `LinkReader` routes the rest.
                    let reader = try await underlying.eventLoop.submit { () -> NIOLoopBound<LinkReader>? in
                        // None once the connection ended and its pipeline is gone: then the
                        // sequence is read to its end.
                        guard let reader = try? underlying.pipeline.syncOperations.handler(type: LinkReader.self) else { return nil }
                        reader.holdFrames()
                        return NIOLoopBound(reader, eventLoop: underlying.eventLoop)
                    }.get()
                    while let frame = try await iterator.next() {
                        if frame.readableBytes == 0, let reader {  // the marker
                            let ended = underlying.eventLoop.flatSubmit { reader.value.route(with: router) }
                            return try await withTaskCancellationHandler {
                                try await ended.get()
                            } onCancel: {
                                underlying.close(promise: nil)
                            }
                        }
                        // What the sequence holds is bounded (what NIO read before it stopped reading).
                        try router.receive(frame)
                        await link.roomForMore()
                    }
                }
            }
        }
    }
}
