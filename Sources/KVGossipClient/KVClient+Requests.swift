import KVGossipControl
import KVGossipCore

/// A request's connection broke under it; `error` says how (`unavailable`, `busy`).
struct ConnectionBroke: Error {
    let error: KVClientError
}

extension KVClient {
    /// Sends one request on the live connection and returns the agent's answer, failed or not.
    ///
    /// A broken connection or a request with no answer within the call timeout drops the
    /// connection (so subscriptions fail over too). `retry` re-sends once on the next
    /// connection; only for requests whose repetition leaves the outcome the caller asked for:
    /// reads, puts of an already signed record (applied at most once) and mints. Not deletes with
    /// the node key, whose repetition would answer `not-found`.
    func send(_ template: ControlRequest, retry: Bool) async throws -> ControlResponse {
        try await onLiveLink(retry: retry) { try await send(template, on: $0) }
    }

    /// Runs `body` on the live connection. When the connection broke under it (``ConnectionBroke``),
    /// `retry` runs it once more on the next one; otherwise, or when that breaks too, the break's
    /// error is thrown.
    func onLiveLink<T>(retry: Bool, _ body: (Link) async throws -> T) async throws -> T {
        var attempts = 0
        while true {
            attempts += 1
            do {
                return try await body(try await liveLink())
            } catch let lost as ConnectionBroke {
                if retry, attempts == 1 { continue }
                throw lost.error
            }
        }
    }

    /// Sends one request on `link`. A connection that broke under the request (or was refused
    /// as `busy`) is thrown as ``ConnectionBroke``, which a caller may retry on the next one.
    func send(_ template: ControlRequest, on link: Link) async throws -> ControlResponse {
        let limit = options.callTimeout
        let endpoint = link.control.endpoint
        do {
            return try await withDeadline(limit, timeout: { KVClientError(.timeout, "\(endpoint) did not answer \(template.op.rawValue) within \(limit)") }) {
                try await link.control.call({ request in
                    let id = request.id
                    request = template
                    request.id = id
                }, op: template.op)
            }
        } catch let error as KVClientError {
            if Task.isCancelled { throw CancellationError() }
            connectionLost(link.generation, error.message)
            throw error
        } catch let error as ControlError where error.reason == "unavailable" || error.reason == "busy" {
            // A cancelled caller also ends its answer stream early; that says nothing about
            // the connection, which the other subscriptions keep using. `busy` here is the
            // agent refusing the connection itself (over its cap): move on like after a loss.
            if Task.isCancelled { throw CancellationError() }
            connectionLost(link.generation, error.message)
            throw ConnectionBroke(error: KVClientError(error))
        } catch let error as ControlError {
            throw KVClientError(error)
        } catch let error as CancellationError {
            throw error
        } catch {
            throw KVClientError(.internal, "\(error)")
        }
    }

    /// The answer if the agent said ok, else its refusal as a ``KVClientError``.
    func accepted(_ response: ControlResponse) throws -> ControlResponse {
        guard response.ok else {
            let error = response.error ?? ControlError(reason: "internal", message: "the agent refused without a reason")
            throw KVClientError(error, revokedGrants: response.unset ?? [])
        }
        return response
    }

    // MARK: Reads

    /// The key's record on the agent now, asked directly (no subscription, no caching), and
    /// verified (Docs/client.md §Verification). Tombstones are included, as in subscriptions: a
    /// deleted key is ``KeyValue/deleted(_:)``.
    /// - Throws: ``KVClientError`` `unverified-record` (naming the key and the failed check) when the
    ///   agent's record does not verify; `no-root` over TCP without `options.cluster`.
    public func get(_ key: String) async throws -> KeyValue {
        let k: Key
        do { k = try Key(key) } catch { throw KVClientError(.invalidKey, error.description) }
        let check = try await recordCheck()
        var request = ControlRequest(id: 0, op: .get)
        request.key = key
        request.includeTombstones = true
        request.includeEncoding = true
        let answer: ControlResponse
        do {
            answer = try accepted(try await send(request, retry: true))
        } catch let error as KVClientError where error.reason == .notFound {
            return .absent
        }
        guard let info = answer.record else { return .absent }
        return KeyValue(try check.verify(info) { $0 == k })
    }

    /// The live values of the keys matching `pattern` on the agent now, sorted by key, each
    /// verified. Asked for in pages (Docs/protocol.md §Control API), so the set may be of any size;
    /// a page asked for again after a reconnect continues where the last one ended.
    /// - Throws: ``KVClientError`` `unverified-record` for the first record that does not verify
    ///   (no partial answer is returned).
    public func list(pattern: String) async throws -> [KeyRecord] {
        let parsed: Pattern
        do { parsed = try Pattern(pattern) } catch { throw KVClientError(.badRequest, error.description) }
        let check = try await recordCheck()
        var request = ControlRequest(id: 0, op: .list)
        request.pattern = pattern
        request.includeEncoding = true
        request.limit = ControlLimits.default.pageRecords
        var out: [KeyRecord] = []
        repeat {
            let page = try accepted(try await send(request, retry: true))
            for entry in await check.check(page.records ?? [], wanted: { parsed.matches($0) }) {
                let record = try entry.result.get()
                if !record.isTombstone { out.append(record) }
            }
            request.after = page.next
        } while request.after != nil
        return out.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
    }
}
