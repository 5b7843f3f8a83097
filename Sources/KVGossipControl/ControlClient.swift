import Foundation
import KVGossipCore
import NIOCore
import NIOPosix
import KVGossipNet
import Synchronization

/// A connection to one agent's control API. Requests are matched to answers by id, so several
/// requests and watches can share the connection. Over TCP the connection first passes the link
/// handshake (Docs/protocol.md §Control over TCP): the client proves its key with `credentials`,
/// refuses an agent whose node key does not chain to the same root, and every frame is sealed.
public final class ControlClient: Sendable {
    public let endpoint: ControlEndpoint
    private let sender: Mutex<FrameSender?> = Mutex(nil)
    private let pending = Mutex<[UInt64: AsyncThrowingStream<ControlResponse, Error>.Continuation]>([:])
    private let nextID = Atomic<UInt64>(1)
    private let connection: Mutex<Task<Void, Never>?> = Mutex(nil)
    /// Why the agent closed the connection, when it said so (a refusal with id 0).
    private let refusal: Mutex<ControlError?> = Mutex(nil)

    private init(endpoint: ControlEndpoint) {
        self.endpoint = endpoint
    }

    /// Connects, failing fast with a message that names the endpoint. A TCP endpoint needs
    /// `credentials`; a Unix socket ignores them (its file mode is its authentication).
    public static func connect(
        _ endpoint: ControlEndpoint, credentials: ControlCredentials? = nil, maxFrameBytes: Int = 8 << 20
    ) async throws -> ControlClient {
        let secured: ControlCredentials?
        switch endpoint {
        case .tcp:
            guard let credentials else {
                throw ControlError(
                    reason: RefusalReason.noAuthority.rawValue,
                    message: "\(endpoint) is a TCP control listener: connecting needs a client key, its grants and the cluster's root")
            }
            secured = credentials
        case .unix:
            secured = nil
        }
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connectTimeout(.seconds(3))
        let initializer: @Sendable (Channel) -> EventLoopFuture<NIOAsyncChannel<ByteBuffer, ByteBuffer>> = {
            $0.framedAsyncChannel(maxFrameBytes: maxFrameBytes)
        }
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            switch endpoint {
            case .unix(let path):
                channel = try await bootstrap.connect(unixDomainSocketPath: path, channelInitializer: initializer)
            case .tcp(let host, let port):
                channel = try await bootstrap.connect(host: host, port: port, channelInitializer: initializer)
            }
        } catch let error as IOError {
            // NIO's description names the system call and repeats the errno; the reason alone reads
            // better ("No such file or directory", "Connection refused").
            throw ControlError(reason: "unavailable", message: "cannot reach the agent at \(endpoint): \(String(cString: strerror(error.errnoCode)))")
        } catch {
            throw ControlError(reason: "unavailable", message: "cannot reach the agent at \(endpoint): \(error)")
        }
        let client = ControlClient(endpoint: endpoint)
        let (ready, readyContinuation) = AsyncStream.makeStream(of: Result<Void, ControlError>.self)
        client.connection.withLock { $0 = Task { await client.run(channel, credentials: secured, ready: readyContinuation) } }
        for await outcome in ready {
            try outcome.get()
            return client
        }
        throw ControlError(reason: "unavailable", message: "the connection to \(endpoint) closed at once")
    }

    /// Owns the connection: the handshake (with credentials), then sets the sender (before `ready`
    /// hears of it, so a connection that ends at once never leaves a sender behind) and routes every
    /// answer to its request.
    private func run(
        _ channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>, credentials: ControlCredentials?,
        ready: AsyncStream<Result<Void, ControlError>>.Continuation
    ) async {
        var failure: Error = ControlError(reason: "unavailable", message: "the agent at \(endpoint) closed the connection")
        do {
            try await channel.executeThenClose { inbound, outbound in
                var frames = inbound.makeAsyncIterator()
                var open: ([UInt8]) -> [UInt8]? = { $0 }
                if let credentials {
                    let opened = try await authenticate(channel.channel, credentials, &frames, outbound)
                    sender.withLock { $0 = FrameSender(outbound: outbound, sealer: opened.sender) }
                    open = opened.receiver.open
                } else {
                    sender.withLock { $0 = FrameSender(outbound: outbound) }
                }
                ready.yield(.success(()))
                ready.finish()
                while let frame = try await frames.next() {
                    guard let bytes = open(Array(frame.readableBytesView)) else {
                        throw ControlError(reason: "malformed", message: "a frame from \(endpoint) does not decrypt")
                    }
                    let response = try JSONDecoder().decode(ControlResponse.self, from: Data(bytes))
                    // Id 0 is the connection's own: a refusal (`busy`, `malformed`) before it closes.
                    if response.id == 0, let error = response.error {
                        failure = error
                        refusal.withLock { $0 = error }
                    }
                    let continuation = pending.withLock { $0[response.id] }
                    continuation?.yield(response)
                }
            }
        } catch let error as ControlError {
            // A refusal the agent gave is the reason, whatever broke after it (a reset, say).
            failure = refusal.withLock { $0 } ?? error
            ready.yield(.failure(error))
        } catch {
            failure = refusal.withLock { $0 } ?? ControlError(reason: "unavailable", message: "connection to \(endpoint) failed: \(error)")
        }
        ready.finish()
        sender.withLock { $0 = nil }
        let all = pending.withLock { p in
            defer { p.removeAll() }
            return Array(p.values)
        }
        for c in all { c.finish(throwing: failure) }
    }

    /// The client's side of the handshake, within the agent's handshake time. Each refusal says
    /// which side refused and why.
    private func authenticate(
        _ channel: Channel, _ credentials: ControlCredentials, _ frames: inout NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator,
        _ outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    ) async throws -> OpenedLink {
        let limit = TimeAmount.milliseconds(Int64(ControlLimits.default.handshakeSeconds * 1000))
        let deadline = channel.eventLoop.scheduleTask(in: limit) { channel.close(promise: nil) }
        defer { deadline.cancel() }
        let handshake = LinkHandshake(
            role: .initiator, cluster: credentials.cluster, credentials: credentials.linkCredentials(), secret: nil, ephemeral: .generate(),
            nonce: secureRandomBytes(LinkHandshake.nonceBytes), service: .control)
        do {
            return try await LinkOpening.open(handshake, frames: &frames, outbound: outbound, admit: credentials.refusal(ofAgent:))
        } catch let refused as LinkRefused {
            let detail = refused.refusal.detail
            let peerRefused = "the peer refused the link: "
            let message = if detail.hasPrefix(peerRefused) {
                "the agent at \(endpoint) refused this client: \(detail.dropFirst(peerRefused.count))"
            } else if let agent = refused.peer {
                "refusing the agent at \(endpoint), \(agent.name) (\(agent.nodeKey.fingerprint)): \(detail)"
            } else {
                "the handshake with \(endpoint) failed: \(detail)"
            }
            throw ControlError(reason: refused.refusal.reason.rawValue, message: message)
        } catch let error as ControlError {
            throw error
        } catch {
            throw ControlError(reason: "unavailable", message: "the handshake with \(endpoint) failed: \(error)")
        }
    }

    /// Sends one request and returns its answer.
    public func call(_ build: (inout ControlRequest) -> Void, op: ControlRequest.Operation) async throws -> ControlResponse {
        let stream = try await open(op: op, build)
        defer { finish(stream.id) }
        for try await response in stream.responses { return response }
        throw ControlError(reason: "unavailable", message: "the agent at \(endpoint) closed the connection")
    }

    /// Sends a request whose answers keep coming (watch); cancel with `finish(id)`.
    public func open(op: ControlRequest.Operation, _ build: (inout ControlRequest) -> Void) async throws
        -> (id: UInt64, responses: AsyncThrowingStream<ControlResponse, Error>)
    {
        let id = nextID.add(1, ordering: .relaxed).oldValue
        var request = ControlRequest(id: id, op: op)
        build(&request)
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: ControlResponse.self, bufferingPolicy: .unbounded)
        pending.withLock { $0[id] = continuation }
        guard let writer = sender.withLock({ $0 }) else {
            // The reader may already have read the agent's refusal (over a cap) and the end after it.
            finish(id)
            throw refusal.withLock { $0 } ?? ControlError(reason: "unavailable", message: "the connection to \(endpoint) is closed")
        }
        do {
            try await writer.send(Array(try JSONEncoder().encode(request)))
        } catch {
            // A write fails on a closing connection, or when the caller gave up waiting for its
            // turn. If the agent refused the connection (over a cap), its reason is in the frames not
            // yet read: wait for the reader to reach the end, and say that. A caller that gave up is
            // not kept waiting for the end of a connection that may stay open.
            finish(id)
            if error is CancellationError || Task.isCancelled { throw error }
            await connection.withLock { $0 }?.value
            throw refusal.withLock { $0 } ?? ControlError(reason: "unavailable", message: "cannot send to \(endpoint): \(error)")
        }
        return (id, stream)
    }

    /// Lists the selection `build` describes page by page (keyset pages: each asks for the keys
    /// after the last one received), handing each page to `body`. The next page is asked for as
    /// soon as one arrives, so the agent reads it while `body` works; neither side ever holds more
    /// than two pages. A refusal is thrown as a `ControlError`.
    public func list(
        pageSize: Int = ControlLimits.default.pageRecords, _ build: (inout ControlRequest) -> Void,
        each body: ([RecordInfo]) async throws -> Void
    ) async throws {
        var template = ControlRequest(id: 0, op: .list)
        build(&template)
        template.limit = pageSize
        let request = template
        @Sendable func page(after: String?) async throws -> ControlResponse {
            let response = try await call({ r in
                let id = r.id
                r = request
                r.id = id
                r.after = after
            }, op: .list)
            guard response.ok else { throw response.error ?? ControlError(reason: "internal", message: "the agent refused without a reason") }
            return response
        }
        var current = try await page(after: nil)
        while true {
            let next = current.next.map { after in Task { try await page(after: after) } }
            do { try await body(current.records ?? []) } catch {
                next?.cancel()
                throw error
            }
            guard let next else { return }
            current = try await next.value
        }
    }

    /// Stops routing answers for `id`.
    public func finish(_ id: UInt64) {
        pending.withLock { $0.removeValue(forKey: id) }?.finish()
    }

    public func close() async {
        sender.withLock { $0 }?.finish()
        let task = connection.withLock { $0 }
        task?.cancel()
        await task?.value
    }
}
