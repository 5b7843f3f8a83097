import KVGossipControl
import Logging

/// A live connection and the generation it belongs to.
struct Link: Sendable {
    let control: ControlClient
    let generation: UInt64
}

extension KVClient {
    func start() {
        guard maintainer == nil, !closed else { return }
        maintainer = Task { await self.maintain() }
    }

    /// Keeps one connection up for as long as the client lives: connect, re-open every interest,
    /// wait for the connection to fail, move to the next endpoint; back off while attempts fail.
    private func maintain() async {
        var index = 0
        var failures = 0
        var lost = losses.makeAsyncIterator()
        while !closed, !Task.isCancelled {
            if failures > 0 {
                try? await Task.sleep(for: options.backoff.delay(afterFailures: failures))
                if closed || Task.isCancelled { break }
            }
            let endpoint = endpoints[index % endpoints.count]
            index += 1
            let control: ControlClient
            do {
                control = try await ControlClient.connect(endpoint, credentials: try credentials(for: endpoint))
            } catch {
                failures += 1
                counters.connectFailures += 1
                // A refusal (of this client or by it) needs someone to act; an absent agent may return.
                let refused = (error as? ControlError).map { $0.reason != "unavailable" } ?? true
                logger.log(
                    level: refused ? .warning : .debug, "cannot connect",
                    metadata: ["endpoint": "\(endpoint)", "error": "\(error)", "failures": "\(failures)"])
                continue
            }
            if closed {
                await control.close()
                break
            }
            let link = adopt(control, at: endpoint)
            let since = ContinuousClock.now
            while let gone = await lost.next(), gone < link.generation {}
            failures = ContinuousClock.now - since >= options.backoff.stableAfter ? 0 : failures + 1
        }
    }

    /// What a TCP endpoint's handshake needs (Docs/client.md §Endpoints and failover): the key
    /// and grants of `options.identity`, and `options.cluster`, the root the agent must chain to.
    /// Never a root learned from an agent: the agent is what the root is there to check.
    private func credentials(for endpoint: Endpoint) throws -> ControlCredentials? {
        guard case .tcp = endpoint else { return nil }
        guard let identity = options.identity, let cluster = options.cluster else {
            throw KVClientError(.noIdentity, Self.tcpNeeds(endpoint))
        }
        do {
            return try ControlCredentials(cluster: cluster, signingKey: identity.signingKey, grants: identity.proofs)
        } catch {
            throw KVClientError(KVClientError.Reason(rawValue: error.reason.rawValue), "cannot connect to \(endpoint) as \(identity.signingKey.publicKey.fingerprint): \(error.detail)")
        }
    }

    static func tcpNeeds(_ endpoint: Endpoint) -> String {
        "\(endpoint) is a TCP control listener: set options.identity (a key and grants chaining it to the root) and options.cluster (the root)"
    }

    /// Makes `control` the live connection and moves every interest onto it.
    private func adopt(_ control: ControlClient, at endpoint: Endpoint) -> Link {
        generation += 1
        self.control = control
        connectedEndpoint = endpoint
        counters.connections += 1
        let link = Link(control: control, generation: generation)
        logger.info("connected", metadata: ["endpoint": "\(endpoint)", "generation": "\(generation)"])
        for waiter in waiters.values { waiter.resume(returning: link) }
        waiters.removeAll()
        for book in keys.values { book.interest.setConnectionState(.awaitingAnswer) }
        Task { await self.reopenAll(on: link) }
        heartbeat?.cancel()
        heartbeat = Task { await self.beat(link) }
        return link
    }

    /// Pings the agent while `link` is the live connection. The ping is an `unwatch` of an id that
    /// names no watch: the agent answers it in its request loop without touching the store.
    private func beat(_ link: Link) async {
        guard let interval = options.heartbeat else { return }
        let limit = options.callTimeout
        let endpoint = link.control.endpoint
        while !Task.isCancelled, link.generation == generation {
            try? await Task.sleep(for: interval)
            guard !Task.isCancelled, link.generation == generation else { return }
            do {
                _ = try await withDeadline(limit, timeout: { KVClientError(.timeout, "\(endpoint) did not answer a heartbeat within \(limit)") }) {
                    try await link.control.call({ _ in }, op: .unwatch)
                }
            } catch {
                if Task.isCancelled { return }
                connectionLost(link.generation, "\(error)")
                return
            }
        }
    }

    private func reopenAll(on link: Link) async {
        for book in Array(keys.values) { await openWatch(book, on: link) }
        for book in Array(lists.values) { await openWatch(book, on: link) }
    }

    /// Anything that saw the connection fail reports here; only the first report per connection
    /// acts. Every interest turns dirty and the reconnecting loop moves on.
    func connectionLost(_ generation: UInt64, _ why: String) {
        guard generation == self.generation, let control else { return }
        self.control = nil
        let endpoint = connectedEndpoint
        connectedEndpoint = nil
        counters.disconnects += 1
        logger.warning("connection lost", metadata: ["endpoint": "\(endpoint.map(String.init(describing:)) ?? "?")", "error": "\(why)"])
        for book in keys.values {
            book.watch = nil
            book.interest.setConnectionState(.disconnected)
        }
        for book in lists.values {
            book.watch = nil
            book.subscription.connectionLost()
        }
        heartbeat?.cancel()
        heartbeat = nil
        lossSignal.yield(generation)
        Task { await control.close() }
    }

    /// The live connection, waiting up to `options.callTimeout` for one.
    func liveLink() async throws -> Link {
        if closed { throw KVClientError(.closed, "the client was closed") }
        if let control { return Link(control: control, generation: generation) }
        start()
        let id = makeID()
        let limit = options.callTimeout
        let endpoints = self.endpoints
        // A TCP endpoint the options cannot authenticate to is never reachable: say so.
        let unusable = (options.identity == nil || options.cluster == nil) ? endpoints.first { if case .tcp = $0 { true } else { false } } : nil
        let hint = unusable.map { "; \(Self.tcpNeeds($0))" } ?? ""
        let timer = Task {
            try? await Task.sleep(for: limit)
            self.expireWaiter(id, KVClientError(.unavailable, "no agent reachable within \(limit) (tried \(endpoints.map(\.description).joined(separator: ", ")))\(hint)"))
        }
        defer { timer.cancel() }
        return try await withCheckedThrowingContinuation { waiters[id] = $0 }
    }

    private func expireWaiter(_ id: UInt64, _ error: KVClientError) {
        waiters.removeValue(forKey: id)?.resume(throwing: error)
    }
}
