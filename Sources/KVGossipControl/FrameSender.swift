import KVGossipCore
import NIOCore

/// The sending side of one control connection, for the agent and for clients. Frames go out one
/// turn at a time (`TurnQueue`), sealed with the connection's stream when it has one (TCP): a
/// sealed stream must be written in the order it was sealed, whoever sends.
final class FrameSender: Sendable {
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private let sealer: SecretStreamSender?
    private let turns = TurnQueue()

    init(outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>, sealer: SecretStreamSender? = nil) {
        self.outbound = outbound
        self.sealer = sealer
    }

    /// Runs `body` in this connection's next turn; `body` sends with `write`.
    func inTurn<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        try await turns.run(body)
    }

    /// Sends one frame in its own turn.
    func send(_ frame: [UInt8]) async throws {
        try await turns.run { try await write(frame) }
    }

    /// Seals and writes a frame; only within a turn.
    func write(_ frame: [UInt8]) async throws {
        try await outbound.write(ByteBuffer(bytes: sealer?.seal(frame) ?? frame))
    }

    /// No more frames: the connection's sending side closes once what was written is out.
    func finish() { outbound.finish() }
}
