import KVGossipControl
import KVGossipCore

/// One watch on one connection; ids restart with every connection, so both are needed.
struct Watch {
    let id: UInt64
    let generation: UInt64
}

/// The client's bookkeeping for one key interest. Lives in the actor only.
final class KeyBook {
    let key: String
    let interest: KeyInterest
    var subscribers = 0
    var watch: Watch?
    /// The generation a watch request is in flight on, so a re-open and a subscribe do not both send one.
    var opening: UInt64?
    var cull: Task<Void, Never>?

    init(key: String, interest: KeyInterest) {
        self.key = key
        self.interest = interest
    }
}

extension KVClient {
    /// Subscribes to one key.
    ///
    /// Subscriptions to the same key share one interest: one watch on the connection and one
    /// cached value. A subscription made while the interest waits out its cull delay reuses it
    /// without asking the agent again. The subscription starts ``Dirtiness/awaitingAnswer`` (or
    /// ``Dirtiness/disconnected``) with the value ``KeyValue/unknown`` unless the interest already
    /// knows better.
    /// - Throws: ``KVClientError`` `invalid-key` for a key that is not one (Docs/contract.md §Keys), `closed`,
    ///   `no-root` (a TCP endpoint and no `options.cluster`).
    public func subscribeKey(_ key: String) async throws -> KeySubscription {
        if closed { throw KVClientError(.closed, "the client was closed") }
        do { _ = try Key(key) } catch { throw KVClientError(.invalidKey, error.description) }
        try requireTrustableRoot()
        start()
        let book: KeyBook
        if let existing = keys[key] {
            book = existing
            book.cull?.cancel()
            book.cull = nil
        } else {
            book = KeyBook(key: key, interest: KeyInterest(key: key, dirtiness: control == nil ? .disconnected : .awaitingAnswer))
            keys[key] = book
        }
        book.subscribers += 1
        let id = makeID()
        book.interest.attach(owner: id)
        let subscription = KeySubscription(key: key, id: id, interest: book.interest, client: self)
        if book.watch == nil, let control { await openWatch(book, on: Link(control: control, generation: generation)) }
        return subscription
    }

    func openWatch(_ book: KeyBook, on link: Link) async {
        guard link.generation == generation, keys[book.key] === book, book.watch == nil, book.opening != link.generation else { return }
        book.opening = link.generation
        let key = book.key
        let check: RecordCheck
        do { check = try await recordCheck(on: link) } catch {
            // An agent that cannot say its root is no agent to verify by: move on.
            if book.opening == link.generation { book.opening = nil }
            connectionLost(link.generation, "\(error)")
            return
        }
        do {
            let (id, responses) = try await link.control.open(op: .watch) {
                $0.key = key
                $0.includeTombstones = true
                $0.includeEncoding = true
            }
            if book.opening == link.generation { book.opening = nil }
            counters.watchesOpened += 1
            // The interest may have been culled, or the connection replaced, while the request was sent.
            guard link.generation == generation, keys[key] === book else {
                counters.watchesClosed += 1
                Task { await link.control.unwatch(id) }
                return
            }
            book.watch = Watch(id: id, generation: link.generation)
            let watch = book.watch!
            Task {
                await self.pump(responses, generation: watch.generation, check: check, wanted: { $0.path == key }) {
                    $0.keyAnswer($1, $2, key: key, watch: watch)
                }
            }
        } catch {
            if book.opening == link.generation { book.opening = nil }
            connectionLost(link.generation, "\(error)")
        }
    }

    /// Feeds one watch's answers to the actor, each event's records checked first, here on the
    /// watch's own task (`wanted`: the keys the watch asked for). A stream that ends with an error
    /// means the connection failed; one that ends quietly was finished on purpose (unwatch).
    nonisolated func pump(
        _ responses: AsyncThrowingStream<ControlResponse, any Error>, generation: UInt64, check: RecordCheck,
        wanted: @escaping @Sendable (Key) -> Bool,
        answer: @escaping @Sendable (isolated KVClient, ControlResponse, CheckedEvent?) async -> Void
    ) async {
        do {
            for try await response in responses {
                var event: CheckedEvent?
                if let raw = response.event { event = await CheckedEvent.checking(raw, with: check, wanted: wanted) }
                await answer(self, response, event)
            }
        } catch {
            await connectionLost(generation, "\(error)")
        }
    }

    fileprivate func keyAnswer(_ response: ControlResponse, _ event: CheckedEvent?, key: String, watch: Watch) {
        guard let book = keys[key], book.watch?.id == watch.id, book.watch?.generation == watch.generation else { return }
        guard response.ok else {
            logger.warning("the agent refused a key watch", metadata: ["key": "\(key)", "error": "\(response.error.map(String.init(describing:)) ?? "?")"])
            return
        }
        if let event {
            if let failure = (event.record.map { [$0] } ?? event.records).first(where: { $0.key == key })?.failure {
                logger.warning("a record from the agent failed verification", metadata: ["key": "\(key)", "error": "\(failure)"])
            }
            book.interest.apply(event)
        }
    }

    /// A subscription let go; the last one starts the cull delay.
    func release(_ subscription: KeySubscription) {
        guard let book = keys[subscription.key], book.interest === subscription.interest else { return }
        book.interest.detach(owner: subscription.id)
        book.subscribers -= 1
        guard book.subscribers == 0 else { return }
        let (key, interest, delay) = (subscription.key, subscription.interest, options.cullDelay)
        book.cull = Task {
            try? await Task.sleep(for: delay)
            if !Task.isCancelled { self.cull(key, interest) }
        }
    }

    private func cull(_ key: String, _ interest: KeyInterest) {
        guard let book = keys[key], book.interest === interest, book.subscribers == 0 else { return }
        keys.removeValue(forKey: key)
        if let watch = book.watch, watch.generation == generation, let control {
            counters.watchesClosed += 1
            Task { await control.unwatch(watch.id) }
        }
        interest.end()
    }
}
