import Foundation
import KVGossipCore
import KVGossipStore
import KVGossipNode
import Logging
import NIOCore
import NIOPosix
import KVGossipNet

/// Serves the control API on a Unix socket (mode 0660) and optionally on TCP. Only moves frames:
/// requests go to `ControlHandler`, on a thread pool because they may wait for an fsync.
public final class ControlServer: Sendable {
    public let handler: ControlHandler
    let logger: Logger
    let maxFrameBytes: Int

    public init(handler: ControlHandler, logger: Logger, maxFrameBytes: Int = Limits.default.maxFrameBytes) {
        self.handler = handler
        self.logger = logger
        self.maxFrameBytes = maxFrameBytes
    }

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
        channel.framedAsyncChannel(maxFrameBytes: maxFrameBytes)
    }

    private func accept(
        _ server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>, transport: ControlHandler.Transport
    ) async throws {
        try await withThrowingDiscardingTaskGroup { group in
            try await server.executeThenClose { inbound in
                for try await connection in inbound {
                    group.addTask { await self.serve(connection, transport: transport) }
                }
            }
        }
    }

    /// One client connection: requests answered in order, watches streamed beside them.
    private func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, transport: ControlHandler.Transport) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                let writer = ResponseWriter(outbound: outbound)
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
                        watches[request.id] = Task { await self.watch(request, writer: writer) }
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

    /// Sends the initial selection, then every committed change it selects, until cancelled.
    private func watch(_ request: ControlRequest, writer: ResponseWriter) async {
        let changes = handler.node.store.changes()
        let states = handler.node.stateChanges()
        var stateTask: Task<Void, Never>?
        defer { stateTask?.cancel() }
        do {
            let handler = self.handler
            let initial = try await NIOThreadPool.singleton.runIfActive { try handler.matching(request) }
            var event = WatchEvent(kind: .initial)
            event.records = initial.filter { $0.kind == .value || request.includeTombstones == true }.map(handler.info)
            // A one-key watch also learns the key's dirtiness when the key is absent.
            if let one = request.key, let key = try? Key(one) { event.state = handler.node.state(of: key).rawValue }
            var first = ControlResponse(id: request.id)
            first.event = event
            try await writer.send(first)
            // Subscribed above, so nothing is lost; started only now so no state event overtakes `initial`.
            stateTask = Task { await self.forwardStates(states, request, writer: writer) }
            for await change in changes {
                guard let event = watchEvent(for: change, request) else { continue }
                var r = ControlResponse(id: request.id)
                r.event = event
                try await writer.send(r)
            }
        } catch let error as ControlError {
            try? await writer.send(.failure(request.id, error.reason, error.message))
        } catch {
            logger.debug("watch ended", metadata: ["error": "\(error)"])
        }
    }

    /// Dirtiness changes of the watched keys; a default-state change is reported per key
    /// currently selected, since that is what a subscriber sees change.
    private func forwardStates(_ states: AsyncStream<Node.StateChange>, _ request: ControlRequest, writer: ResponseWriter) async {
        for await change in states {
            var keys: [(Key, KeyState)] = []
            switch change {
            case .key(let key, let state):
                if handler.selects(request, key) { keys = [(key, state)] }
            case .all:
                let handler = self.handler
                let selected = (try? await NIOThreadPool.singleton.runIfActive { try handler.matching(request) }) ?? []
                keys = selected.map { ($0.key, handler.node.state(of: $0.key)) }
                if let one = request.key, selected.isEmpty, let key = try? Key(one) { keys = [(key, handler.node.state(of: key))] }
            }
            for (key, state) in keys {
                var event = WatchEvent(kind: .state)
                event.key = key.path
                event.state = state.rawValue
                var r = ControlResponse(id: request.id)
                r.event = event
                do { try await writer.send(r) } catch { return }
            }
        }
    }

    private func watchEvent(for change: StoreChange, _ request: ControlRequest) -> WatchEvent? {
        switch change {
        case .record(let record, _, _):
            guard handler.selects(request, record.key) else { return nil }
            var e = WatchEvent(kind: record.kind == .value ? .changed : .removed)
            e.key = record.key.path
            e.record = handler.info(record)
            return e
        case .unset(let key, _):
            guard handler.selects(request, key) else { return nil }
            var e = WatchEvent(kind: .removed)
            e.key = key.path
            return e
        case .revocation:
            return nil
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

/// Serialises responses onto one connection from the request loop and its watches.
final class ResponseWriter: Sendable {
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>

    init(outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) {
        self.outbound = outbound
    }

    func send(_ response: ControlResponse) async throws {
        let data = try JSONEncoder().encode(response)
        try await outbound.write(ByteBuffer(bytes: data))
    }
}
