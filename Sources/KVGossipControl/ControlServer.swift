import Foundation
import KVGossipCore
import KVGossipStore
import KVGossipNode
import Logging
import NIOCore
import NIOPosix
import KVGossipNet
import Synchronization

/// Serves the control API on a Unix socket (mode 0660) and optionally on TCP. Only moves frames:
/// requests go to `ControlHandler`, on a thread pool because they may wait for an fsync. Every
/// connection is counted against `ControlLimits` and every watch against its connection's and
/// its transport's caps.
public final class ControlServer: Sendable {
    public let handler: ControlHandler
    let logger: Logger
    let maxFrameBytes: Int
    let watches: WatchRegistry
    private let admission = Mutex(ConnectionCounts())
    /// Refusals being delivered now; past a few dozen, more are closed without a word.
    private let refusing = Atomic<Int>(0)

    public init(handler: ControlHandler, logger: Logger, maxFrameBytes: Int = Limits.default.maxFrameBytes) {
        self.handler = handler
        self.logger = logger
        self.maxFrameBytes = maxFrameBytes
        watches = WatchRegistry(node: handler.node, limit: handler.limits.watches)
    }

    var limits: ControlLimits { handler.limits }

    /// Binds `path` and serves until the calling task is cancelled. Refuses to take over a socket
    /// another live agent is answering on; a stale socket file from a crash is replaced.
    public func serveUnix(path: String, ready: @Sendable () -> Void = {}) async throws {
        if FileManager.default.fileExists(atPath: path), ControlServer.someoneAnswers(at: path) {
            throw ControlError(reason: "internal", message: "another agent is already serving the control socket \(path)")
        }
        try FileManager.default.createDirectory(
            atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path, withIntermediateDirectories: true)
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true) { channel in
                self.configure(channel)
            }
        chmod(path, 0o660)
        // Members of the `kvgossip` group (created by Scripts/install) may use the socket.
        if let group = getgrnam("kvgossip") { chown(path, uid_t.max, group.pointee.gr_gid) }
        logger.info("control API listening", metadata: ["socket": "\(path)"])
        ready()
        try await accept(server, transport: .local)
    }

    /// Serves remote clients on TCP: reads and client-signed writes only.
    public func serveTCP(host: String, port: Int, ready: @Sendable (Int) -> Void = { _ in }) async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port) { channel in self.configure(channel) }
        let bound = server.channel.localAddress?.port ?? port
        logger.info("control API listening on TCP (client-signed writes only)", metadata: ["address": "\(host):\(bound)"])
        ready(bound)
        try await accept(server, transport: .remote)
    }

    private func configure(_ channel: Channel) -> EventLoopFuture<NIOAsyncChannel<ByteBuffer, ByteBuffer>> {
        // Requests are answered one at a time, so two waiting frames are plenty: more are left in
        // the socket, where they cost this agent nothing.
        channel.framedAsyncChannel(
            maxFrameBytes: maxFrameBytes, frameDeadline: .milliseconds(Int64(limits.frameSeconds * 1000)), inboundFrames: 2)
    }

    private func accept(
        _ server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>, transport: ControlHandler.Transport
    ) async throws {
        try await withThrowingDiscardingTaskGroup { group in
            try await server.executeThenClose { inbound in
                for try await connection in inbound {
                    let address = transport == .remote ? connection.channel.remoteAddress?.ipAddress : nil
                    let limits = self.limits
                    if let refusal = admission.withLock({ $0.admit(transport, address: address, limits: limits) }) {
                        group.addTask { await self.refuse(connection, refusal) }
                        continue
                    }
                    group.addTask {
                        defer { self.admission.withLock { $0.release(transport, address: address) } }
                        await self.serve(connection, transport: transport)
                    }
                }
            }
        }
    }

    /// Tells a connection over the caps why it is closed. The refusal is sent and the sending side
    /// shut, then the client gets a moment to read it: closing a TCP socket with unread input resets
    /// it, which could destroy the answer before the client reads it.
    private func refuse(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, _ message: String) async {
        logger.warning("control connection refused", metadata: ["reason": "\(message)"])
        guard refusing.add(1, ordering: .relaxed).newValue <= 32 else {
            refusing.subtract(1, ordering: .relaxed)
            try? await connection.channel.close()
            return
        }
        defer { refusing.subtract(1, ordering: .relaxed) }
        let channel = connection.channel
        try? await connection.executeThenClose { inbound, outbound in
            try await ResponseWriter(outbound: outbound).send(.failure(0, "busy", message))
            try? await channel.close(mode: .output)
            channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
            for try await _ in inbound {}
        }
    }

    /// One client connection: requests answered in order, watches streamed beside them.
    private func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, transport: ControlHandler.Transport) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                let writer = ResponseWriter(outbound: outbound)
                let backlog = ConnectionBacklog(limit: limits.connectionBacklog)
                var watches: [UInt64: Task<Void, Never>] = [:]
                defer { for task in watches.values { task.cancel() } }
                for try await frame in inbound {
                    let request: ControlRequest
                    do {
                        request = try JSONDecoder().decode(ControlRequest.self, from: Data(frame.readableBytesView))
                    } catch {
                        // Malformed input ends this connection, never the agent.
                        logger.warning("malformed control request; closing the connection", metadata: ["error": "\(error)"])
                        try await writer.send(.failure(0, "malformed", "request is not valid JSON of the control API: \(error)"))
                        return
                    }
                    switch request.op {
                    case .watch:
                        watches[request.id]?.cancel()
                        if watches.count >= limits.watchesPerConnection {
                            try await writer.send(.failure(request.id, "busy", "this connection already has \(limits.watchesPerConnection) watches open; close some (unwatch) or use a prefix or pattern"))
                            continue
                        }
                        let session: WatchSession
                        do {
                            session = try WatchSession(request, handler: handler, registry: self.watches, transport: transport, backlog: backlog, writer: writer)
                        } catch let error as ControlError {
                            try await writer.send(.failure(request.id, error.reason, error.message))
                            continue
                        }
                        watches[request.id] = Task { await session.run(logger: logger) }
                    case .unwatch:
                        watches.removeValue(forKey: request.id)?.cancel()
                        try await writer.send(ControlResponse(id: request.id))
                    case .sync:
                        if transport == .remote {
                            try await writer.send(.failure(request.id, "no-authority", "sync is only served on the local socket"))
                        } else {
                            try await writer.send(await handler.handleAsync(request))
                        }
                    case .status:
                        // The peer list is async; the rest reads the store, on the thread pool.
                        let handler = self.handler
                        let peers = await handler.peers()
                        let response = try await NIOThreadPool.singleton.runIfActive { handler.status(request, peers: peers) }
                        try await writer.send(response)
                    default:
                        let handler = self.handler
                        let response = try await NIOThreadPool.singleton.runIfActive {
                            handler.handle(request, transport: transport)
                        }
                        try await writer.send(response)
                    }
                }
            }
        } catch {
            logger.debug("control connection ended", metadata: ["error": "\(error)"])
        }
    }

    /// Whether a live process accepts connections on the socket at `path`.
    static func someoneAnswers(at path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8.prefix(MemoryLayout.size(ofValue: addr.sun_path) - 1))
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0 }
        }
    }
}

/// Serialises responses onto one connection from the request loop and its watches. Writers take
/// turns (`TurnQueue`), and a watch builds its answer only in its turn, so a connection holds one
/// answer outside the socket at a time however many watches it has.
final class ResponseWriter: Sendable {
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private let turns = TurnQueue()

    init(outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) {
        self.outbound = outbound
    }

    /// Suspends while the connection cannot take more (the client reads slowly): at most about one
    /// frame waits in this agent's memory per connection.
    func send(_ response: ControlResponse) async throws {
        try await turns.run { try await write(response) }
    }

    /// Builds the answer in this connection's turn and sends it (nothing when `make` gives nil).
    func send(building make: () async throws -> ControlResponse?) async throws {
        try await turns.run {
            if let response = try await make() { try await write(response) }
        }
    }

    private func write(_ response: ControlResponse) async throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        try await outbound.write(ByteBuffer(bytes: try encoder.encode(response)))
    }
}
