import KVGossipCore
import NIOCore
import Synchronization

/// The sending half of an established link: seals frames with the link's send stream and hands them
/// to the connection's event loop from whichever thread sends, in the order they were sealed.
///
/// Frames once went through a writer task on the cooperative pool, which had to be scheduled before
/// it could pass them on to the event loop: a thread wake-up between a push's commit and the wire,
/// and another between a receiver's commit and its answer. Sealing and the hand-off happen under
/// one lock, so the event loop writes the frames in sealing order (the receiving stream requires it).
///
/// What is handed over and not yet written is counted (`backlog`). A peer that asks and never reads
/// would otherwise have every answer kept in memory for it: a pull of a few large records costs it
/// about a hundred bytes and this node megabytes. Sessions wait for room before they read their
/// next message (`roomToSend`), so such a peer's requests stay in its own socket; a backlog that
/// stays full with nothing written for the stall timeout closes the link (`isStalled`). A peer
/// that reads slowly still completes a write now and then, and keeps its link.
final class LinkOutput: Sendable {
    private let channel: any Channel
    /// Nil once closed: nothing is sent after `close()`.
    private let sender: Mutex<SecretStreamSender?>
    /// Sessions wait while this many bytes or more are handed over and not yet written.
    let backlogLimit: Int
    private let backlog = Mutex(Backlog())

    private struct Backlog {
        var bytes = 0
        /// While the backlog is at or over the limit: when it got there, or when a write last
        /// completed since (the peer read something).
        var fullSince: ContinuousClock.Instant?
        var waiting: [CheckedContinuation<Void, Never>] = []
        var closed = false
    }

    init(channel: any Channel, sender: SecretStreamSender, backlogLimit: Int) {
        self.channel = channel
        self.sender = Mutex(sender)
        self.backlogLimit = backlogLimit
    }

    /// Seals `frames` and writes them with one flush (a push's two messages leave in one system
    /// call); returns the bytes put on the wire, length prefixes included, or nil when closed. A
    /// failed write closes the connection, which ends the link's reader and with it the link.
    func send(_ frames: [[UInt8]]) -> Int? {
        sender.withLock { sender -> Int? in
            guard let sender else { return nil }
            let sealed = frames.map { ByteBuffer(bytes: sender.seal($0)) }
            let bytes = sealed.reduce(0) { $0 + $1.readableBytes + 4 }
            backlog.withLock { b in
                b.bytes += bytes
                if b.bytes >= backlogLimit, b.fullSince == nil { b.fullSince = .now }
            }
            let channel = self.channel
            channel.eventLoop.execute {
                for buffer in sealed.dropLast() { channel.write(buffer, promise: nil) }
                // Writes complete in order, and a failure fails every write still queued, so the
                // last one's outcome accounts for all of them.
                channel.writeAndFlush(sealed.last!).whenComplete { result in
                    if case .failure = result { channel.close(promise: nil) }
                    self.written(bytes)
                }
            }
            return bytes
        }
    }

    private func written(_ bytes: Int) {
        let resumed = backlog.withLock { b -> [CheckedContinuation<Void, Never>] in
            b.bytes -= bytes
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
        let wasOpen = sender.withLock { sender -> Bool in
            defer { sender = nil }
            return sender != nil
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
