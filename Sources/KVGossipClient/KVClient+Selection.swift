import KVGossipControl
import KVGossipCore

extension KVClient {
    /// The live values of the keys matching any of `patterns`, sorted by key, all as of one
    /// moment of the agent: it reads them in one store transaction, so every commit (a write, a
    /// sync batch, a revocation's cascade) is in the answer entirely or not at all. Asking for the
    /// patterns one by one with ``list(pattern:)`` gives no such promise.
    ///
    /// An agent too old to know the request's `patterns` answers with everything it holds; the
    /// answer is narrowed here, so the result is the same, only dearer.
    /// - Throws: ``KVClientError`` `bad-request` for an invalid pattern or more than
    ///   `ControlRequest.maxPatterns` of them; what ``list(pattern:)`` throws.
    public func list(patterns: [String]) async throws -> [KeyRecord] {
        guard patterns.count <= ControlRequest.maxPatterns else {
            throw KVClientError(.badRequest, "\(patterns.count) patterns; at most \(ControlRequest.maxPatterns)")
        }
        var parsed: [Pattern] = []
        for text in patterns {
            do { parsed.append(try Pattern(text)) } catch { throw KVClientError(.badRequest, error.description) }
        }
        guard !parsed.isEmpty else { return [] }
        var request = ControlRequest(id: 0, op: .list)
        request.patterns = patterns
        let records = try accepted(try await send(request, retry: true)).records ?? []
        return records.filter { info in
            guard info.kind == "value", let key = try? Key(info.key) else { return false }
            return parsed.contains { $0.matches(key) }
        }.map(KeyRecord.init).sorted { $0.key < $1.key }
    }
}
