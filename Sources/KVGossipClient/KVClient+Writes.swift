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
        request.key = try validKey(key).path
        request.value = value
        // Repeating a mint whose answer was lost leaves the key holding the same value, just
        // with a later timestamp: what the caller asked for, so it may be retried.
        return result(try accepted(try await send(request, retry: true)))
    }

    /// Deletes a key with a tombstone signed by the agent's node key; see ``mint(_:value:)``.
    /// - Throws: ``KVClientError`` `not-found` when the key holds no value.
    @discardableResult
    public func remove(_ key: String) async throws -> WriteResult {
        var request = ControlRequest(id: 0, op: .delete)
        request.key = try validKey(key).path
        return result(try accepted(try await send(request, retry: false)))
    }

    private func putSigned(_ key: String, kind: Record.Kind, value: [UInt8], identity: ClientIdentity?) async throws -> WriteResult {
        let k = try validKey(key)
        guard let identity = identity ?? options.identity else {
            throw KVClientError(.noIdentity, "a client-signed write needs a ClientIdentity (pass one, or set options.identity)")
        }
        let cluster = try await clusterID()
        let current = try await get(key).record.map { HLC(raw: $0.timestamp) }
        let nowMs = UInt64(Date().timeIntervalSince1970 * 1000)
        let timestamp = HLC.mint(nowMs: nowMs, current: current, lastMinted: lastMinted)
        lastMinted = timestamp
        let record = Record(
            cluster: cluster, key: k, kind: kind, value: value, timestamp: timestamp, signer: identity.signingKey, pool: identity.proofs)
        var request = ControlRequest(id: 0, op: .put)
        request.object = Data(record.encoded)
        return result(try accepted(try await send(request, retry: true)))
    }

    /// The cluster id records are bound to: from the options, else asked of the agent once.
    private func clusterID() async throws -> PublicKey {
        if let cluster { return cluster }
        let status = try accepted(try await send(ControlRequest(id: 0, op: .status), retry: true)).status
        guard let text = status?.root else { throw KVClientError(.internal, "the agent's status did not name its root key") }
        do {
            let root = try PublicKey(text: text)
            cluster = root
            return root
        } catch {
            throw KVClientError(.malformed, "the agent's root key: \(error.description)")
        }
    }

    private func validKey(_ key: String) throws -> Key {
        do { return try Key(key) } catch { throw KVClientError(.invalidKey, error.description) }
    }

    private func result(_ response: ControlResponse) -> WriteResult {
        WriteResult(outcome: WriteResult.Outcome(rawValue: response.outcome ?? "accepted"), record: response.record.map(KeyRecord.init))
    }
}
