import KVGossipNet
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// `GET /metrics` over HTTP/1.1 for Prometheus scrapers; other paths answer 404, other methods
/// 405. Read-only and cheap: the snapshot is gathered per request from state the agent keeps.
public final class MetricsServer: Sendable {
    let snapshot: @Sendable () async -> MetricsSnapshot
    let logger: Logger
    /// Scrapers use one or two connections. At most `maxConnections` are open; a connection quiet
    /// for `idleTimeout` is closed, and one that has not sent a whole request `requestDeadline`
    /// after it opened (or after its last answer) is closed even if it trickles bytes, so stray or
    /// slow clients cannot pile up descriptors.
    static let maxConnections = 16
    static let idleTimeout = TimeAmount.seconds(30)
    static let requestDeadline = TimeAmount.seconds(10)
    /// The connections, as slots (`HandshakeSlots`): a full table closes the oldest connection of
    /// the address holding the most, connections that have not yet been answered before those
    /// that have, so clients that hold connections from many addresses cannot keep a scraper out;
    /// they push out only each other. No cap per address: a cap would refuse a scraper that
    /// shares its address with the holders (the same host, a NAT), where making room does not.
    private let slots = PendingHandshakes(perSource: .max, total: maxConnections)

    typealias HTTPConnection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    public init(logger: Logger, snapshot: @escaping @Sendable () async -> MetricsSnapshot) {
        self.logger = logger
        self.snapshot = snapshot
    }

    /// Binds and serves until cancelled; `ready` gets the bound port.
    public func serve(host: String, port: Int, ready: @Sendable (Int) -> Void = { _ in }) async throws {
        let accepted = AcceptedConnections<HTTPConnection>()
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port) { channel in
                accepted.track(
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandlers([IdleStateHandler(readTimeout: Self.idleTimeout), CloseWhenIdle()])
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        return try HTTPConnection(wrappingChannelSynchronously: channel)
                    })
            }
        let bound = server.channel.localAddress?.port ?? port
        logger.info("metrics listening", metadata: ["address": "\(host):\(bound)", "path": "/metrics"])
        ready(bound)
        try await accepted.serve(server) { await self.answer($0) }
    }

    private func answer(_ connection: HTTPConnection) async {
        let channel = connection.channel
        guard let slot = slots.reserve(channel.remoteAddress?.ipAddress ?? "?", close: { channel.close(promise: nil) }) else {
            try? await connection.executeThenClose { _, _ in }
            return
        }
        defer { slots.release(slot) }
        // Until a whole request is in; renewed after each answer.
        var deadline = channel.eventLoop.scheduleTask(in: Self.requestDeadline) { channel.close(promise: nil) }
        defer { deadline.cancel() }
        do {
            try await connection.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                for try await part in inbound {
                    switch part {
                    case .head(let h):
                        head = h
                    case .body:
                        continue
                    case .end:
                        guard let request = head else { continue }
                        head = nil
                        deadline.cancel()
                        let (status, body) = await response(to: request)
                        var headers = HTTPHeaders()
                        headers.add(name: "Content-Type", value: status == .ok ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8")
                        headers.add(name: "Content-Length", value: String(body.utf8.count))
                        if !request.isKeepAlive { headers.add(name: "Connection", value: "close") }
                        try await outbound.write(.head(HTTPResponseHead(version: request.version, status: status, headers: headers)))
                        if request.method != .HEAD { try await outbound.write(.body(.byteBuffer(ByteBuffer(string: body)))) }
                        try await outbound.write(.end(nil))
                        if !request.isKeepAlive { return }
                        slots.vouch(slot)
                        deadline = channel.eventLoop.scheduleTask(in: Self.requestDeadline) { channel.close(promise: nil) }
                    }
                }
            }
        } catch {
            logger.debug("metrics connection ended with an error", metadata: ["error": "\(error)"])
        }
    }

    private func response(to request: HTTPRequestHead) async -> (HTTPResponseStatus, String) {
        guard request.method == .GET || request.method == .HEAD else { return (.methodNotAllowed, "only GET\n") }
        let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
        guard path == "/metrics" else { return (.notFound, "kvgossip serves /metrics only\n") }
        return (.ok, await snapshot().prometheusText)
    }
}

