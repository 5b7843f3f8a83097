import KVGossipControl
import KVGossipCore
import Logging

/// A client of one or more KVGossip agents (Docs/contract.md §Control API, Docs/client.md).
///
/// It talks to one agent at a time over the control API. When that connection fails it moves on
/// to the next endpoint, retrying with capped exponential backoff and jitter, and re-opens every
/// live subscription on the new connection. Subscriptions to the same key share one watch; list
/// subscriptions reconcile their sets after each reconnect. Every record an agent sends is
/// verified by the client before it is delivered (Docs/client.md §Verification).
///
/// ```swift
/// var options = KVClientOptions()
/// options.cluster = try PublicKey(text: "ed25519:…")  // what every record is verified against
/// let client = KVClient(endpoints: [.unix("/run/kvgossip/control.sock"), .tcp(host: "10.0.0.2", port: 7948)], options: options)
/// let url = try await client.subscribeKey("/app/db/url")
/// for await value in url.valueChanges { print(value, url.dirtiness) }
/// ```
///
/// Call ``close()`` when done: the client keeps a reconnecting task alive until then.
public actor KVClient {
    /// Where an agent's control API listens: `.unix(path)` or `.tcp(host:port:)`.
    /// `Endpoint(parsing:)` reads `host:port` as TCP and anything else as a socket path.
    public typealias Endpoint = ControlEndpoint

    /// The agents, in the order they are tried.
    public nonisolated let endpoints: [Endpoint]
    /// The options the client was made with.
    public nonisolated let options: KVClientOptions
    let logger: Logger

    // Connection (KVClient+Connection.swift).
    var control: ControlClient?
    var connectedEndpoint: Endpoint?
    /// Bumped on every new connection; answers and failures from an older one are ignored.
    var generation: UInt64 = 0
    var maintainer: Task<Void, Never>?
    var heartbeat: Task<Void, Never>?
    let losses: AsyncStream<UInt64>
    let lossSignal: AsyncStream<UInt64>.Continuation
    var waiters: [UInt64: CheckedContinuation<Link, any Error>] = [:]
    var closed = false

    // Interests (KVClient+Keys.swift, KVClient+Lists.swift).
    var keys: [String: KeyBook] = [:]
    var lists: [UInt64: ListBook] = [:]
    var nextID: UInt64 = 0

    // Trust (KVClient+Trust.swift): the root records are verified against, and the check.
    var cluster: PublicKey?
    var checker: RecordCheck?

    // Writes (KVClient+Writes.swift).
    var lastMinted: HLC?

    var counters = Statistics()

    /// A client of the given agents; it starts connecting to the first at once.
    /// - Parameter endpoints: at least one; tried in order, wrapping around.
    public init(endpoints: [Endpoint], options: KVClientOptions = KVClientOptions()) {
        precondition(!endpoints.isEmpty, "a KVClient needs at least one endpoint")
        self.endpoints = endpoints
        self.options = options
        logger = options.logger
        cluster = options.cluster
        (losses, lossSignal) = AsyncStream.makeStream(of: UInt64.self, bufferingPolicy: .bufferingNewest(16))
        Task { await self.start() }
    }

    /// A client of agents given as text: socket paths or `host:port`.
    public init(addresses: [String], options: KVClientOptions = KVClientOptions()) {
        self.init(endpoints: addresses.map(Endpoint.init(parsing:)), options: options)
    }

    /// Counters for monitoring and tests.
    public struct Statistics: Sendable, Equatable {
        /// The endpoint of the live connection, if any.
        public var endpoint: Endpoint?
        /// Connections established.
        public var connections = 0
        /// Connection attempts that failed.
        public var connectFailures = 0
        /// Live connections that were lost.
        public var disconnects = 0
        /// Watches opened on the agents (key and list), counting re-opens after reconnects.
        public var watchesOpened = 0
        /// Watches ended with `unwatch` (culled interests, ended list subscriptions).
        public var watchesClosed = 0
        /// Key interests held now, including those waiting out their cull delay.
        public var keyInterests = 0
        /// List subscriptions held now.
        public var listSubscriptions = 0
    }

    /// The client's counters now.
    public var statistics: Statistics {
        var s = counters
        s.endpoint = connectedEndpoint
        s.keyInterests = keys.count
        s.listSubscriptions = lists.count
        return s
    }

    /// Stops reconnecting, ends every subscription's streams and closes the connection.
    /// Pending requests fail with `closed`.
    public func close() async {
        guard !closed else { return }
        closed = true
        maintainer?.cancel()
        heartbeat?.cancel()
        lossSignal.finish()
        for waiter in waiters.values { waiter.resume(throwing: KVClientError(.closed, "the client was closed")) }
        waiters.removeAll()
        for book in keys.values {
            book.cull?.cancel()
            book.interest.end()
        }
        for book in lists.values { book.subscription.end() }
        keys.removeAll()
        lists.removeAll()
        if let control {
            self.control = nil
            connectedEndpoint = nil
            await control.close()
        }
        await maintainer?.value
    }

    func makeID() -> UInt64 {
        nextID += 1
        return nextID
    }
}
