import Logging
import Synchronization

/// What a `SerfSession` reports, in order.
public enum SerfSessionEvent: Sendable {
    /// A new connection is up (handshake, auth and the stream done). Re-read `members` now: events
    /// that happened while disconnected were not seen.
    case connected(SerfRPCClient)
    /// The connection is gone; the session is retrying with backoff.
    case disconnected(reason: String)
    /// A record of the session's stream (member events, queries to answer, user events).
    case event(SerfStreamEvent)
}

/// A Serf RPC connection that survives agent restarts: it reconnects with backoff, re-handshakes,
/// re-authenticates, re-opens its stream and reports each (dis)connection. This is what the
/// gossip engine holds; a single `SerfRPCClient` is one connection's lifetime.
public final class SerfSession: Sendable {
    public struct Configuration: Sendable {
        public var address: SerfRPCAddress
        public var authKey: String?
        /// The stream to keep open (a `SerfEventFilter` comma list); nil for none.
        public var streamType: String?
        public var backoff: SerfBackoff
        public var requestTimeout: Duration

        public init(
            address: SerfRPCAddress = .default, authKey: String? = nil,
            streamType: String? = SerfEventFilter.memberEvents, backoff: SerfBackoff = SerfBackoff(),
            requestTimeout: Duration = .seconds(10)
        ) {
            self.address = address
            self.authKey = authKey
            self.streamType = streamType
            self.backoff = backoff
            self.requestTimeout = requestTimeout
        }
    }

    public let configuration: Configuration
    /// Every connection, disconnection and stream record. Single consumer; unbounded so the
    /// session never stalls the connection.
    public let events: AsyncStream<SerfSessionEvent>
    private let sink: AsyncStream<SerfSessionEvent>.Continuation
    private let logger: Logger
    private let current = Mutex<SerfRPCClient?>(nil)
    private let loop = Mutex<Task<Void, Never>?>(nil)

    public init(_ configuration: Configuration, logger: Logger = Logger(label: "kvgossip.serf.session")) {
        self.configuration = configuration
        self.logger = logger
        (events, sink) = AsyncStream.makeStream(of: SerfSessionEvent.self)
    }

    /// Starts connecting in the background. Calling it twice has no effect.
    public func start() {
        loop.withLock { task in
            guard task == nil else { return }
            task = Task { await self.run() }
        }
    }

    /// Stops reconnecting, closes the connection and ends `events`.
    public func close() async {
        let task = loop.withLock { $0 }
        task?.cancel()
        await current.withLock { $0 }?.close()
        await task?.value
        sink.finish()
    }

    /// The connection in use, if any.
    public var client: SerfRPCClient? { current.withLock { $0 } }

    /// Runs `body` with the current connection, or throws `notConnected`.
    public func withClient<T: Sendable>(_ body: (SerfRPCClient) async throws -> T) async throws -> T {
        guard let client = client, !client.isClosed else { throw SerfError.notConnected }
        return try await body(client)
    }

    /// `members` on the current connection.
    public func members() async throws -> [SerfMember] {
        try await withClient { try await $0.members() }
    }

    /// `query` on the current connection.
    public func query(_ request: SerfQueryRequest) async throws -> AsyncThrowingStream<SerfQueryEvent, any Error> {
        try await withClient { try await $0.query(request) }
    }

    private func run() async {
        var attempt = 0
        var lastFailure = ""
        while !Task.isCancelled {
            var reason: String
            do {
                let client = try await SerfRPCClient.connect(
                    to: configuration.address, authKey: configuration.authKey,
                    requestTimeout: configuration.requestTimeout)
                let stream: SerfEventStream?
                do {
                    stream = try await configuration.streamType.asyncMap { try await client.stream(type: $0) }
                } catch {
                    await client.close()
                    throw error
                }
                current.withLock { $0 = client }
                attempt = 0
                lastFailure = ""
                logger.info("connected to serf", metadata: ["rpc": "\(configuration.address)"])
                sink.yield(.connected(client))
                reason = await follow(client, stream)
                current.withLock { $0 = nil }
                await client.close()
                sink.yield(.disconnected(reason: reason))
                logger.warning("serf connection lost", metadata: ["rpc": "\(configuration.address)", "reason": "\(reason)"])
            } catch {
                reason = "\(error)"
                // Log a failure once per kind, not on every retry while the agent is down.
                if reason != lastFailure {
                    logger.warning("cannot reach serf; retrying", metadata: ["rpc": "\(configuration.address)", "error": "\(reason)"])
                    lastFailure = reason
                }
            }
            if Task.isCancelled { break }
            do {
                try await Task.sleep(for: configuration.backoff.delay(attempt: attempt))
            } catch {
                break
            }
            attempt += 1
        }
    }

    /// Forwards stream records until the connection ends; returns why it ended.
    private func follow(_ client: SerfRPCClient, _ stream: SerfEventStream?) async -> String {
        guard let stream else { return "\(await client.waitUntilClosed())" }
        do {
            for try await event in stream { sink.yield(.event(event)) }
            return Task.isCancelled ? "session closed" : "the stream ended"
        } catch {
            return "\(error)"
        }
    }
}

extension Optional {
    fileprivate func asyncMap<U>(_ transform: (Wrapped) async throws -> U) async rethrows -> U? {
        guard let self else { return nil }
        return try await transform(self)
    }
}
