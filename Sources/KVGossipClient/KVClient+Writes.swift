import Foundation
import KVGossipControl
import KVGossipCore

extension KVClient {
    /// Writes a value signed by the client's own key (`identity`, else `options.identity`).
    ///
    /// The record is timestamped after the key's current record on the agent and after anything this client
    /// minted before, so it wins unless someone writes later (Docs/contract.md §Ordering). The agent verifies
    /// it exactly as a record from a peer, so this works over TCP too.
    /// - Throws: ``KVClientError`` with the agent's reason (`no-authority`, `revoked`, `expired`,
    ///   `too-large`, …), or `no-identity` when there is no key to sign with.
    @discardableResult
    public func put(_ key: String, value: Data, as identity: ClientIdentity? = nil) async throws -> WriteResult {
        try await putSigned(key, kind: .value, value: [UInt8](value), identity: identity)
    }

    /// Deletes a key with a tombstone signed by the client's own key; see ``put(_:value:as:)``.
    @discardableResult
    public func delete(_ key: String, as identity: ClientIdentity? = nil) async throws -> WriteResult {
        try await putSigned(key, kind: .tombstone, value: [], identity: identity)
    }

    /// Writes a value signed by the agent's node key (it must hold a grant for the key).
    /// Served on the agent's Unix socket only: over TCP the agent refuses with `no-authority`.
    @discardableResult
    public func mint(_ key: String, value: Data) async throws -> WriteResult {
        var request = ControlRequest(id: 0, op: .mint)
        let k = try validKey(key)
        let check = try await recordCheck()
        request.key = k.path
        request.value = value
        request.includeEncoding = true
        // Repeating a mint whose answer was lost leaves the key holding the same value, just
        // with a later timestamp: what the caller asked for, so it may be retried.
        return try result(try accepted(try await send(request, retry: true)), key: k, check: check)
    }

    /// Deletes a key with a tombstone signed by the agent's node key; see ``mint(_:value:)``.
    /// - Throws: ``KVClientError`` `not-found` when the key holds no value.
    @discardableResult
    public func remove(_ key: String) async throws -> WriteResult {
        var request = ControlRequest(id: 0, op: .delete)
        let k = try validKey(key)
        let check = try await recordCheck()
        request.key = k.path
        request.includeEncoding = true
        return try result(try accepted(try await send(request, retry: false)), key: k, check: check)
    }

    private func putSigned(_ key: String, kind: Record.Kind, value: [UInt8], identity: ClientIdentity?) async throws -> WriteResult {
        let k = try validKey(key)
        guard let identity = identity ?? options.identity else {
            throw KVClientError(.noIdentity, "a client-signed write needs a ClientIdentity (pass one, or set options.identity)")
        }
        let check = try await recordCheck()
        // The current record is verified like any read, so a forged one is refused there; one
        // that verifies may still be dated far ahead, which the writers' rule refuses below.
        let current = try await get(key).record.map { HLC(raw: $0.timestamp) }
        let nowMs = check.clock()
        let maxSkew = options.limits.maxSkewMs
        let plan = HLC.mintPlan(nowMs: nowMs, current: current, lastMinted: lastMinted, maxSkewMs: maxSkew)
        if let refusal = HLC.refusalToMint(plan.timestamp, after: current, key: k, nowMs: nowMs, maxSkewMs: maxSkew) {
            throw KVClientError(.clockSkew, refusal.detail, key: key)
        }
        lastMinted = plan.timestamp
        let record = Record(
            cluster: check.root, key: k, kind: kind, value: value, timestamp: plan.timestamp, signer: identity.signingKey, pool: identity.proofs)
        var request = ControlRequest(id: 0, op: .put)
        request.object = Data(record.encoded)
        request.includeEncoding = true
        return try result(try accepted(try await send(request, retry: true)), key: k, check: check)
    }

    private func validKey(_ key: String) throws -> Key {
        do { return try Key(key) } catch { throw KVClientError(.invalidKey, error.description) }
    }

    /// The write's outcome with the key's winning record, verified: an agent that answers with a
    /// record that does not verify is not believed about the outcome either.
    private func result(_ response: ControlResponse, key: Key, check: RecordCheck) throws -> WriteResult {
        let record = try response.record.map { info in try check.verify(info) { $0 == key } }
        return WriteResult(outcome: WriteResult.Outcome(rawValue: response.outcome ?? "accepted"), record: record)
    }
}
