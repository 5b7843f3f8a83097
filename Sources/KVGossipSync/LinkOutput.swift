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
final class LinkOutput: Sendable {
    private let channel: any Channel
    /// Nil once closed: nothing is sent after `close()`.
    private let sender: Mutex<SecretStreamSender?>

    init(channel: any Channel, sender: SecretStreamSender) {
        self.channel = channel
        self.sender = Mutex(sender)
    }

    /// Seals `frames` and writes them with one flush (a push's two messages leave in one system
    /// call); returns the bytes put on the wire, length prefixes included, or nil when closed. A
    /// failed write closes the connection, which ends the link's reader and with it the link.
    func send(_ frames: [[UInt8]]) -> Int? {
        sender.withLock { sender -> Int? in
            guard let sender else { return nil }
            let sealed = frames.map { ByteBuffer(bytes: sender.seal($0)) }
            let channel = self.channel
            channel.eventLoop.execute {
                for buffer in sealed.dropLast() { channel.write(buffer, promise: nil) }
                channel.writeAndFlush(sealed.last!).whenFailure { _ in channel.close(promise: nil) }
            }
            return sealed.reduce(0) { $0 + $1.readableBytes + 4 }
        }
    }

    /// Sends nothing more, and closes the connection once what was handed over is written.
    func close() {
        let wasOpen = sender.withLock { sender -> Bool in
            defer { sender = nil }
            return sender != nil
        }
        guard wasOpen else { return }
        let channel = self.channel
        channel.eventLoop.execute { channel.close(promise: nil) }
    }
}
