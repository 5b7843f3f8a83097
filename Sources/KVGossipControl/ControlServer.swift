import Foundation
import KVGossipCore
import KVGossipStore
import KVGossipNode
import Logging
import NIOCore
import NIOPosix
import KVGossipNet
import Synchronization

/// Serves the control API on a Unix socket (mode 0660) and optionally on TCP, where every
/// connection must first pass the link handshake (`ControlServer+Remote.swift`). Only moves
/// frames: requests go to `ControlHandler`, on a thread pool because they may wait for an fsync.
/// Every connection is counted against `ControlLimits` and every watch against its connection's
/// and its transport's caps.
public final class ControlServer: Sendable {
    public let handler: ControlHandler
    let logger: Logger
    let maxFrameBytes: Int
    let watches: WatchRegistry
    let admission = Mutex(ConnectionCounts())
    /// Refusals being delivered now; past a few dozen, more are closed without a word.
    private let refusing = Atomic<Int>(0)
    /// TCP connections still in their handshake.
    let handshakes: PendingHandshakes
    /// The admitted TCP clients connected now, so a revocation can close those it takes.
    let remoteClients = Mutex(RemoteClients())
    /// This server's id in handshakes (see `LinkIdentity.instance`).
    let instanceID = secureRandomBytes(LinkIdentity.instanceBytes)
    /// Refusals of TCP clients, logged at a bounded rate.
    let refusalLog: RefusalLog
    /// The socket this server put at its path, by device and inode: the only file `removeSocket`
    /// may remove.
    private let installed = Mutex<(path: String, device: UInt64, inode: UInt64)?>(nil)

    public init(handler: ControlHandler, logger: Logger, maxFrameBytes: Int = Limits.default.maxFrameBytes) {
        self.handler = handler
        self.logger = logger
        self.maxFrameBytes = maxFrameBytes
        watches = WatchRegistry(node: handler.node, limit: handler.limits.watches)
        handshakes = PendingHandshakes(perSource: handler.limits.handshakesPerAddress, total: handler.limits.handshakes)
        refusalLog = RefusalLog(logger: logger)
    }

    var limits: ControlLimits { handler.limits }

    /// Binds `path` and serves until the calling task is cancelled. Refuses to take over a socket
    /// another live agent is answering on; a stale socket file from a crash is replaced.
    public func serveUnix(path: String, ready: @Sendable () -> Void = {}) async throws {
        if FileManager.default.fileExists(atPath: path), ControlServer.someoneAnswers(at: path) {
            throw ControlError(reason: "internal", message: "another agent is already serving the control socket \(path)")
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
        try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
        var existing = stat()
        if lstat(path, &existing) == 0, existing.st_mode & S_IFMT != S_IFSOCK {
            throw ControlError(reason: "internal", message: "\(path) exists and is not a socket; refusing to replace it")
        }
        // Bound under a name of its own and given its mode and group there, then renamed into
        // place: the socket answers at `path` only once it has them. (bind creates it with the
        // process's umask, which under a umask of 0 would let anyone connect until the chmod.)
        // A path too long for a socket address to take the staging suffix is bound in place.
        let candidate = directory.appendingPathComponent(".kvg-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).binding").path
        let staging = candidate.utf8.count <= Self.longestSocketPath ? candidate : path
        let accepted = AcceptedConnections<NIOAsyncChannel<ByteBuffer, ByteBuffer>>()
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(unixDomainSocketPath: staging, cleanupExistingSocketFile: true) { channel in
                accepted.track(self.configure(channel, frameLimit: FrameLimit(self.largestFrame(sealing: false))))
            }
        do {
            try Self.restrict(staging)
            guard staging == path || rename(staging, path) == 0 else { throw Self.failure("cannot move the control socket to \(path)", errno) }
            var placed = stat()
            if lstat(path, &placed) == 0 { installed.withLock { $0 = (path, UInt64(placed.st_dev), UInt64(placed.st_ino)) } }
        } catch {
            unlink(staging)
            await accepted.closeUnserved(server)
            throw error
        }
        logger.info("control API listening", metadata: ["socket": "\(path)"])
        ready()
        try await accepted.serve(server) { await self.serveLocal($0) }
    }

    /// Removes the socket `serveUnix` put at its path, if that path still holds it: never a socket
    /// of another agent, nor a file that was there when this server refused to start.
    public func removeSocket() {
        installed.withLock { entry in
            guard let socket = entry else { return }
            var now = stat()
            if lstat(socket.path, &now) == 0, UInt64(now.st_dev) == socket.device, UInt64(now.st_ino) == socket.inode {
                unlink(socket.path)
            }
            entry = nil
        }
    }

    /// Mode 0660, and the group `kvgossip` where it exists (Scripts/install creates it): its
    /// members may use the socket (Docs/security.md §The control socket).
    static func restrict(_ socket: String) throws {
        guard chmod(socket, 0o660) == 0 else { throw failure("cannot set the mode of the control socket", errno) }
        if let group = getgrnam("kvgossip"), chown(socket, uid_t.max, group.pointee.gr_gid) != 0 {
            throw failure("cannot give the control socket to the group kvgossip", errno)
        }
    }

    private static func failure(_ what: String, _ code: Int32) -> ControlError {
        ControlError(reason: "internal", message: "\(what): \(String(cString: strerror(code)))")
    }

    /// The largest request frame: `sealing` when frames arrive sealed (TCP), each longer than its
    /// request by the seal.
    func largestFrame(sealing: Bool) -> Int { maxFrameBytes + (sealing ? SecretStreamSender.overheadBytes : 0) }

    /// `frameLimit`: what the decoder reads (a TCP connection's starts at the handshake's size).
    func configure(_ channel: Channel, frameLimit: FrameLimit) -> EventLoopFuture<NIOAsyncChannel<ByteBuffer, ByteBuffer>> {
        // Requests are answered one at a time, so two waiting frames are plenty: more are left in
        // the socket, where they cost this agent nothing.
        channel.framedAsyncChannel(frameLimit: frameLimit, frameDeadline: .milliseconds(Int64(limits.frameSeconds * 1000)), inboundFrames: 2)
    }

    /// One Unix socket connection, counted against the caps.
    private func serveLocal(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async {
        let transport = ControlHandler.Transport.local
        let limits = self.limits
        if let refusal = admission.withLock({ $0.admit(transport, address: nil, limits: limits) }) {
            try? await connection.executeThenClose { inbound, outbound in
                var frames = inbound.makeAsyncIterator()
                await refuse(connection.channel, &frames, FrameSender(outbound: outbound), .failure(0, "busy", refusal))
            }
            return
        }
        defer { admission.withLock { $0.release(transport, address: nil) } }
        do {
            try await connection.executeThenClose { inbound, outbound in
                var frames = inbound.makeAsyncIterator()
                try await answer(&frames, open: { $0 }, writer: ResponseWriter(FrameSender(outbound: outbound)), transport: transport)
            }
        } catch {
            logger.debug("control connection ended", metadata: ["error": "\(error)"])
        }
    }

    /// Tells a connection why it is closed (`answer`, when given), then lets it go. The sending
    /// side is shut and the client gets a moment to read: closing a TCP socket with unread input
    /// resets it, which could destroy the answer before the client reads it.
    func refuse(
        _ channel: Channel, _ frames: inout NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator, _ sender: FrameSender,
        _ answer: ControlResponse?
    ) async {
        if let message = answer?.error?.message { logger.warning("control connection refused", metadata: ["reason": "\(message)"]) }
        guard refusing.add(1, ordering: .relaxed).newValue <= 32 else {
            refusing.subtract(1, ordering: .relaxed)
            try? await channel.close()
            return
        }
        defer { refusing.subtract(1, ordering: .relaxed) }
        if let answer { try? await ResponseWriter(sender).send(answer) }
        try? await channel.close(mode: .output)
        channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
        while (try? await frames.next()) != nil {}
    }

    /// One client's requests, answered in order, watches streamed beside them, until it closes.
    /// `open` turns each frame into the request's bytes (nil: not from this connection's peer).
    func answer(
        _ frames: inout NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator, open: ([UInt8]) -> [UInt8]?, writer: ResponseWriter,
        transport: ControlHandler.Transport
    ) async throws {
        let backlog = ConnectionBacklog(limit: limits.connectionBacklog)
        var watches: [UInt64: Task<Void, Never>] = [:]
        defer { for task in watches.values { task.cancel() } }
        while let frame = try await frames.next() {
            guard let bytes = open(Array(frame.readableBytesView)) else {
                logger.warning("a control frame does not decrypt; closing the connection")
                return
            }
            let request: ControlRequest
            do {
                request = try JSONDecoder().decode(ControlRequest.self, from: Data(bytes))
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
                } catch {
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

    /// The longest path a Unix socket address holds (its `sun_path`, less the terminating zero).
    static let longestSocketPath = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    /// Whether a live process accepts connections on the socket at `path`.
    static func someoneAnswers(at path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8.prefix(longestSocketPath))
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0 }
        }
    }
}

/// Serialises responses onto one connection from the request loop and its watches. Writers take
/// turns (`FrameSender`), and a watch builds its answer only in its turn, so a connection holds one
/// answer outside the socket at a time however many watches it has.
final class ResponseWriter: Sendable {
    let sender: FrameSender

    init(_ sender: FrameSender) {
        self.sender = sender
    }

    /// Suspends while the connection cannot take more (the client reads slowly): at most about one
    /// frame waits in this agent's memory per connection.
    func send(_ response: ControlResponse) async throws {
        try await sender.inTurn { try await sender.write(try Self.encode(response)) }
    }

    /// Builds the answer in this connection's turn and sends it (nothing when `make` gives nil).
    func send(building make: () async throws -> ControlResponse?) async throws {
        try await sender.inTurn {
            if let response = try await make() { try await sender.write(try Self.encode(response)) }
        }
    }

    static func encode(_ response: ControlResponse) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        return Array(try encoder.encode(response))
    }
}
