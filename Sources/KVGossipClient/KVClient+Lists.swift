import KVGossipControl
import KVGossipCore

/// The client's bookkeeping for one list subscription. Lives in the actor only.
final class ListBook {
    let id: UInt64
    let pattern: String
    let subscription: ListSubscription
    var watch: Watch?
    var opening: UInt64?

    init(id: UInt64, pattern: String, subscription: ListSubscription) {
        self.id = id
        self.pattern = pattern
        self.subscription = subscription
    }
}

extension KVClient {
    /// Subscribes to the set of keys matching `pattern` (`*`, `?`, `**`: Docs/contract.md §Patterns), holding
    /// live values only.
    ///
    /// The subscription's events start with the initial set (`.added(_, .initial)` per key, then
    /// `.synced(.initial)`), then follow changes. After a reconnect the new connection's answer is
    /// compared with the set held: keys removed, changed or added meanwhile come as `.resync`
    /// events, then `.synced(.resync)`. Each list subscription has its own watch.
    /// - Throws: ``KVClientError`` `bad-request` for an invalid pattern, `closed`, `no-root` (a TCP
    ///   endpoint and no `options.cluster`).
    public func subscribeList(pattern: String) async throws -> ListSubscription {
        if closed { throw KVClientError(.closed, "the client was closed") }
        do { _ = try Pattern(pattern) } catch { throw KVClientError(.badRequest, error.description) }
        try requireTrustableRoot()
        start()
        let id = makeID()
        let subscription = ListSubscription(pattern: pattern, id: id, client: self)
        let book = ListBook(id: id, pattern: pattern, subscription: subscription)
        lists[id] = book
        if let control { await openWatch(book, on: Link(control: control, generation: generation)) }
        return subscription
    }

    func openWatch(_ book: ListBook, on link: Link) async {
        guard link.generation == generation, lists[book.id] === book, book.watch == nil, book.opening != link.generation else { return }
        book.opening = link.generation
        let pattern = book.pattern
        let check: RecordCheck
        do { check = try await recordCheck(on: link) } catch {
            // An agent that cannot say its root is no agent to verify by: move on.
            if book.opening == link.generation { book.opening = nil }
            connectionLost(link.generation, "\(error)")
            return
        }
        // Checked when the subscription was made, so it parses.
        guard let selected = try? Pattern(pattern) else { return }
        do {
            let (id, responses) = try await link.control.open(op: .watch) {
                $0.pattern = pattern
                $0.includeEncoding = true
            }
            if book.opening == link.generation { book.opening = nil }
            counters.watchesOpened += 1
            guard link.generation == generation, lists[book.id] === book else {
                counters.watchesClosed += 1
                Task { await link.control.unwatch(id) }
                return
            }
            let watch = Watch(id: id, generation: link.generation)
            book.watch = watch
            let listID = book.id
            Task {
                await self.pump(responses, generation: watch.generation, check: check, wanted: { selected.matches($0) }) {
                    $0.listAnswer($1, $2, list: listID, watch: watch)
                }
            }
        } catch {
            if book.opening == link.generation { book.opening = nil }
            connectionLost(link.generation, "\(error)")
        }
    }

    fileprivate func listAnswer(_ response: ControlResponse, _ event: CheckedEvent?, list: UInt64, watch: Watch) {
        guard let book = lists[list], book.watch?.id == watch.id, book.watch?.generation == watch.generation else { return }
        guard response.ok, let event else {
            if !response.ok {
                logger.warning("the agent refused a list watch", metadata: ["pattern": "\(book.pattern)", "error": "\(response.error.map(String.init(describing:)) ?? "?")"])
            }
            return
        }
        if event.kind == .initial {
            book.subscription.applyInitial(event.records, more: event.more)
        } else {
            book.subscription.apply(event)
        }
    }

    func release(_ subscription: ListSubscription) {
        guard let book = lists.removeValue(forKey: subscription.id) else { return }
        if let watch = book.watch, watch.generation == generation, let control {
            counters.watchesClosed += 1
            Task { await control.unwatch(watch.id) }
        }
    }
}
