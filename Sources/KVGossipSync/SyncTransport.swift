import KVGossipCore
import KVGossipNet
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// A sync state machine as the transport drives it.
public protocol SyncDriver: Sendable {
    var isFinished: Bool { get }
    mutating func receive(_ message: SyncMessage) throws -> [SyncMessage]
}

extension SyncResponder: SyncDriver {}
extension SyncInitiator: SyncDriver {}
extension SyncPusher: SyncDriver {}

/// Bytes and messages moved by one session, for status and benchmarks.
public struct TransferStats: Sendable, Equatable {
    public var bytesSent = 0
    public var bytesReceived = 0
    public var messagesSent = 0
    public var messagesReceived = 0
    public init() {}
}

/// Network settings of sync sessions.
public struct SyncTransportOptions: Sendable {
    public var maxFrameBytes = Limits.default.maxFrameBytes + 64 * 1024
    /// A peer silent this long loses the session.
    public var readTimeout = TimeAmount.seconds(15)
    public var connectTimeout = TimeAmount.seconds(3)
    /// Sessions served at once; more are answered "busy" and closed. Most are pushes, which
    /// last a millisecond; the bound only protects memory (each holds at most two batches).
    public var maxConcurrentSessions = 32
    public var limits = Limits.default
    /// When set, every sync connection is encrypted and authenticated with it (Docs/contract.md §Security).
    public var secret: ClusterSecret?
    public init() {}
}

/// A peer's sync address.
public struct PeerAddress: Sendable, Hashable, CustomStringConvertible {
    public let host: String
    public let port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `HOST:PORT`, IPv6 hosts in brackets.
    public init?(parsing text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self.init(host: host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Runs sync sessions over TCP: dials as initiator or pusher, and serves responders.
public enum SyncTransport {
    /// Threads for the blocking half of sessions (store reads, signature checks, commits).
    static let storeWork: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 4)
        pool.start()
        return pool
    }()

    /// Connects to `peer` and runs `driver` (whose first messages are `opening`) to the end.
    public static func dial<D: SyncDriver>(
        _ peer: PeerAddress, driver: inout D, opening: [SyncMessage], options: SyncTransportOptions
    ) async throws -> TransferStats {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(options.connectTimeout)
            .connect(host: peer.host, port: peer.port) { channel in
                channel.framedAsyncChannel(maxFrameBytes: options.maxFrameBytes, readTimeout: options.readTimeout, secret: options.secret)
            }
        return try await run(channel, driver: &driver, opening: opening, options: options)
    }

    /// Drives one session on an open channel: send, then answer each received message, until the
    /// driver is finished. A protocol error is reported to the peer before the connection closes.
    static func run<D: SyncDriver>(
        _ channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>, driver: inout D, opening: [SyncMessage], options: SyncTransportOptions
    ) async throws -> TransferStats {
        var stats = TransferStats()
        var local = driver
        defer { driver = local }
        try await channel.executeThenClose { inbound, outbound in
            func send(_ messages: [SyncMessage]) async throws {
                for m in messages {
                    let bytes = SyncMessageCodec.encode(m)
                    stats.bytesSent += bytes.count + 4
                    stats.messagesSent += 1
                    try await outbound.write(ByteBuffer(bytes: bytes))
                }
            }
            try await send(opening)
            var frames = inbound.makeAsyncIterator()
            while !local.isFinished {
                guard let frame = try await frames.next() else {
                    throw SyncProtocolError("the peer closed the connection or went quiet mid-session")
                }
                stats.bytesReceived += frame.readableBytes + 4
                stats.messagesReceived += 1
                do {
                    let message = try SyncMessageCodec.decode(Array(frame.readableBytesView), limits: options.limits)
                    // Answering may verify signatures and commit (an fsync): off the cooperative pool,
                    // whose few threads the rest of the agent (Serf, control, timers) needs.
                    let current = local
                    let (next, replies) = try await SyncTransport.storeWork.runIfActive { () throws -> (D, [SyncMessage]) in
                        var driver = current
                        let replies = try driver.receive(message)
                        return (driver, replies)
                    }
                    local = next
                    try await send(replies)
                } catch let error as Refusal {
                    try? await send([.failure("malformed message: \(error)")])
                    throw SyncProtocolError("malformed message from the peer: \(error)")
                } catch let error as SyncProtocolError {
                    try? await send([.failure(error.description)])
                    throw error
                }
            }
        }
        return stats
    }
}

/// Accepts sync connections and answers each with a `SyncResponder`.
public final class SyncServer: Sendable {
    /// Makes the responder for one connection, given the peer's IP address.
    let makeResponder: @Sendable (String?) -> SyncResponder
    let onComplete: @Sendable (SyncReport) -> Void
    let options: SyncTransportOptions
    let logger: Logger
    private let active = Atomic<Int>(0)

    /// - Parameter onComplete: called with the report of every session that ended cleanly.
    public init(
        options: SyncTransportOptions, logger: Logger, makeResponder: @escaping @Sendable (String?) -> SyncResponder,
        onComplete: @escaping @Sendable (SyncReport) -> Void = { _ in }
    ) {
        self.options = options
        self.logger = logger
        self.makeResponder = makeResponder
        self.onComplete = onComplete
    }

    /// Binds and serves until cancelled; `ready` gets the bound port (useful with port 0).
    public func serve(host: String, port: Int, ready: @Sendable (Int) -> Void = { _ in }) async throws {
        let options = self.options
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port) { channel in
                channel.framedAsyncChannel(maxFrameBytes: options.maxFrameBytes, readTimeout: options.readTimeout, secret: options.secret)
            }
        let bound = server.channel.localAddress?.port ?? port
        logger.info("sync listening", metadata: ["address": "\(host):\(bound)"])
        ready(bound)
        try await withThrowingDiscardingTaskGroup { group in
            try await server.executeThenClose { inbound in
                for try await connection in inbound {
                    group.addTask { await self.answer(connection) }
                }
            }
        }
    }

    private func answer(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async {
        let remote = connection.channel.remoteAddress?.description ?? "?"
        guard active.add(1, ordering: .relaxed).newValue <= options.maxConcurrentSessions else {
            active.subtract(1, ordering: .relaxed)
            try? await connection.executeThenClose { _, outbound in
                try await outbound.write(ByteBuffer(bytes: SyncMessageCodec.encode(.failure("busy: too many sync sessions"))))
            }
            return
        }
        defer { active.subtract(1, ordering: .relaxed) }
        var responder = makeResponder(connection.channel.remoteAddress?.ipAddress)
        do {
            let stats = try await SyncTransport.run(connection, driver: &responder, opening: [], options: options)
            let r = responder.report
            onComplete(r)
            // Pushes (no summary walk) are routine; full sessions that moved something are news.
            if r.viewRequests > 0, r.recordsReceived + r.recordsSent + r.revocationsReceived + r.revocationsSent > 0 {
                logger.info("answered a sync session", metadata: [
                    "peer": "\(r.peer)", "received": "\(r.recordsReceived)", "sent": "\(r.recordsSent)",
                    "revocations": "\(r.revocationsReceived)/\(r.revocationsSent)", "bytes": "\(stats.bytesReceived + stats.bytesSent)",
                ])
            }
        } catch {
            logger.warning("sync session from \(remote) ended with an error", metadata: ["peer": "\(responder.peer)", "error": "\(error)"])
        }
    }
}
