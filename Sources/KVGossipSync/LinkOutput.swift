import KVGossipCore
import KVGossipNet
import NIOCore
import Synchronization

/// The sending half of an established link: seals frames with the link's send stream and writes
/// them from whichever thread sends, in the order they were sealed.
///
/// Frames once went through a writer task on the cooperative pool, which had to be scheduled before
/// it could pass them on to the event loop: a thread wake-up between a push's commit and the wire,
/// and another between a receiver's commit and its answer. Then they were handed to the event
/// loop, which still woke the loop's thread for every push. Now the sending thread writes them to
/// the socket itself, through a descriptor of the link's own (`SocketDuplicate`), whenever nothing
/// handed to the event loop is still unwritten; what the socket does not take at once, and
/// everything sent while such bytes wait, goes to the event loop as before, which writes it when
/// the peer reads. Sealing and writing (or handing over) happen under one lock, so the bytes reach
/// the wire in sealing order (the receiving stream requires it). The first frames always go
/// through the event loop: once they are written, so is everything the handshake queued there
/// before them, and the socket may be written directly. Once NIO closes the channel, or a write
/// fails, the socket of our own is closed and nothing is written directly again.
///
/// What is handed over and not yet written is counted (`backlog`). A peer that asks and never reads
/// would otherwise have every answer kept in memory for it: a pull of a few large records costs it
/// about a hundred bytes and this node megabytes. Sessions wait for room before they read their
/// next message (`roomToSend`), so such a peer's requests stay in its own socket; a backlog that
/// stays full with nothing written for the stall timeout closes the link (`isStalled`). A peer
/// that reads slowly still completes a write now and then, and keeps its link. Bytes written
/// directly are in the kernel's socket buffer, which is bounded, and are not counted.
final class LinkOutput: Sendable {
    private let channel: any Channel
    /// Nil once closed: nothing is sent after `close()`.
    private let sending: Mutex<Sending?>
    /// Sessions wait while this many bytes or more are handed over and not yet written.
    let backlogLimit: Int
    private let backlog = Mutex(Backlog())

    private struct Sending {
        let stream: SecretStreamSender
        /// Nil when the socket could not be found, when a handler in the pipeline seals frames again
        /// (`mayWriteDirectly`), or once NIO has closed the connection or a write has failed.
        var socket: SocketDuplicate?

        /// Closes the socket of our own, if any; after this no thread writes to it (its number
        /// may be reused), and everything goes through the event loop.
        mutating func dropSocket() {
            socket?.close()
            socket = nil
        }
    }

    private struct Backlog {
        var bytes = 0
        /// While the backlog is at or over the limit: when it got there, or when a write last
        /// completed since (the peer read something).
        var fullSince: ContinuousClock.Instant?
        var waiting: [CheckedContinuation<Void, Never>] = []
        var closed = false
        /// Whether a write handed to the event loop has completed: until then the handshake's
        /// last frames may still be queued there, and nothing is written directly.
        var loopHasWritten = false
    }

    /// Whether `channel`'s frames may be written past its pipeline: not when a handler there seals
    /// them again (`SecretStreamHandler`, which a sync link does not have: its cluster secret
    /// authenticates the handshake only, Docs/protocol.md §Links). False for a channel already closed.
    static func mayWriteDirectly(_ channel: any Channel) async -> Bool {
        let sealedAgain = try? await channel.eventLoop.submit {
            (try? channel.pipeline.syncOperations.handler(type: SecretStreamHandler.self)) != nil
        }.get()
        return sealedAgain == false
    }

    /// `direct`: whether frames may be written from the sending thread (`mayWriteDirectly`).
    init(channel: any Channel, sender: SecretStreamSender, backlogLimit: Int, direct: Bool) {
        self.channel = channel
        self.sending = Mutex(Sending(stream: sender, socket: direct ? SocketDuplicate.of(channel) : nil))
        self.backlogLimit = backlogLimit
        // Once NIO has closed its descriptor (an idle timeout, the peer's end, a failed write),
        // ours must go too: it would hold the connection open, and writes to it would follow a
        // stream NIO broke off, perhaps inside a frame.
        channel.closeFuture.whenComplete { _ in self.dropSocket() }
    }

    private func dropSocket() { sending.withLock { $0?.dropSocket() } }

    deinit { dropSocket() }

    /// Seals `frames` and writes them with one system call (a push's two messages leave together);
    /// returns the bytes put on the wire, length prefixes included, or nil when closed. A failed
    /// write closes the connection, which ends the link's reader and with it the link.
    func send(_ frames: [[UInt8]]) -> Int? {
        sending.withLock { sending -> Int? in
            guard let state = sending else { return nil }
            if let socket = state.socket, backlog.withLock({ $0.loopHasWritten && $0.bytes == 0 }) {
                var wire = ByteBuffer()
                for frame in frames { FrameEncoder.append(state.stream.seal(frame), to: &wire) }
                let bytes = wire.readableBytes
                switch socket.send(wire) {
                case .all:
                    return bytes
                case .part(let count):
                    wire.moveReaderIndex(forwardBy: count)
                    handOver(unframed: wire)
                    return bytes
                case .failed:
                    sending?.dropSocket()
                    let channel = self.channel
                    channel.eventLoop.execute { channel.close(promise: nil) }
                    return nil
                }
            }
            let sealed = frames.map { ByteBuffer(bytes: state.stream.seal($0)) }
            let bytes = sealed.reduce(0) { $0 + $1.readableBytes + 4 }
            count(handedOver: bytes)
            let channel = self.channel
            channel.eventLoop.execute {
                for buffer in sealed.dropLast() { channel.write(buffer, promise: nil) }
                // Writes complete in order, and a failure fails every write still queued, so the
                // last one's outcome accounts for all of them.
                channel.writeAndFlush(sealed.last!).whenComplete { result in
                    if case .failure = result { channel.close(promise: nil) }
                    self.written(bytes, result)
                }
            }
            return bytes
        }
    }

    /// Hands the rest of a direct write, frames already prefixed, to the event loop, past the
    /// pipeline's frame encoder (which would prefix it again).
    private func handOver(unframed rest: ByteBuffer) {
        let bytes = rest.readableBytes
        count(handedOver: bytes)
        let channel = self.channel
        channel.eventLoop.execute {
            guard let encoder = try? channel.pipeline.syncOperations.context(handlerType: MessageToByteHandler<FrameEncoder>.self) else {
                // Only a closed channel has lost its handlers.
                channel.close(promise: nil)
                return self.written(bytes, .failure(ChannelError.ioOnClosedChannel))
            }
            encoder.writeAndFlush(NIOAny(rest)).whenComplete { result in
                if case .failure = result { channel.close(promise: nil) }
                self.written(bytes, result)
            }
        }
    }

    private func count(handedOver bytes: Int) {
        backlog.withLock { b in
            b.bytes += bytes
            if b.bytes >= backlogLimit, b.fullSince == nil { b.fullSince = .now }
        }
    }

    /// Bytes handed to the event loop were written, or failed (the connection is closing).
    private func written(_ bytes: Int, _ result: Result<Void, any Error>) {
        // A failed write proves nothing about what went before it, and the connection is done.
        if case .failure = result { dropSocket() }
        let resumed = backlog.withLock { b -> [CheckedContinuation<Void, Never>] in
            b.bytes -= bytes
            if case .success = result { b.loopHasWritten = true }
            guard b.bytes < backlogLimit else {
                b.fullSince = .now
                return []
            }
            b.fullSince = nil
            defer { b.waiting = [] }
            return b.waiting
        }
        for c in resumed { c.resume() }
    }

    /// Returns once fewer than `backlogLimit` bytes wait to be written, or the link is closed.
    func roomToSend() async {
        if backlog.withLock({ $0.closed || $0.bytes < backlogLimit }) { return }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = backlog.withLock { b -> Bool in
                if b.closed || b.bytes < backlogLimit { return true }
                b.waiting.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    /// Whether the backlog has stayed at or over its limit, with no write completing, for longer
    /// than `timeout`: the peer has stopped reading.
    func isStalled(longerThan timeout: Duration) -> Bool {
        backlog.withLock { $0.fullSince.map { ContinuousClock.now - $0 > timeout } ?? false }
    }

    /// Sends nothing more, and closes the connection once what was handed over is written.
    func close() {
        let wasOpen = sending.withLock { sending -> Bool in
            defer { sending = nil }
            sending?.dropSocket()
            return sending != nil
        }
        let resumed = backlog.withLock { b -> [CheckedContinuation<Void, Never>] in
            b.closed = true
            defer { b.waiting = [] }
            return b.waiting
        }
        for c in resumed { c.resume() }
        guard wasOpen else { return }
        let channel = self.channel
        channel.eventLoop.execute { channel.close(promise: nil) }
    }
}
