import KVGossipControl
import KVGossipCore

extension KVClient {
    /// The check every record from an agent must pass (Docs/client.md §Verification), made once
    /// the cluster root is known.
    ///
    /// The root is `options.cluster`. Without one, it is taken from the `status` of the first
    /// agent this client reaches and pinned for the client's life, which is allowed only when
    /// every endpoint is a **Unix socket**: whoever serves the local socket is the host's own
    /// agent, as trusted as the host (Docs/security.md §What the client library trusts). A root
    /// learned over TCP would let whoever answers at that address vouch for its own records, so a
    /// client with any TCP endpoint needs a configured root (``requireTrustableRoot()``).
    func recordCheck() async throws -> RecordCheck {
        if let checker { return checker }
        try requireTrustableRoot()
        // As for a read: a connection lost or refused as `busy` under the question is asked again
        // once, on the next connection (the next endpoint).
        return try await onLiveLink(retry: true) { try await recordCheck(on: $0) }
    }

    /// Throws `no-root` when records could only be verified against a root learned over TCP.
    /// Decided from the endpoints alone, so a misconfigured client fails at its first call,
    /// whichever agent it happens to reach first.
    func requireTrustableRoot() throws(KVClientError) {
        guard cluster == nil, let tcp = endpoints.first(where: { if case .tcp = $0 { true } else { false } }) else { return }
        throw KVClientError(
            .noRoot,
            "\(tcp) is reached over TCP and no cluster root is configured (KVClientOptions.cluster): the client does not take the root from an agent it cannot trust, so it could verify no record")
    }

    /// ``recordCheck()`` on a given connection (a watch being opened on it).
    func recordCheck(on link: Link) async throws -> RecordCheck {
        if let checker { return checker }
        let root: PublicKey
        if let cluster {
            root = cluster
        } else {
            root = try await learnRoot(on: link)
        }
        // Another task may have pinned a root while this one asked.
        if let checker { return checker }
        let made = RecordCheck(root: root, limits: options.limits)
        cluster = root
        checker = made
        return made
    }

    /// The root the agent at `link` names; never asked over TCP. A connection that broke under
    /// the question throws ``ConnectionBroke``.
    private func learnRoot(on link: Link) async throws -> PublicKey {
        guard case .unix = link.control.endpoint else { throw KVClientError(.noRoot, "no root is learned over TCP (\(link.control.endpoint))") }
        let status = try accepted(try await send(ControlRequest(id: 0, op: .status), on: link))
        guard let text = status.status?.root else { throw KVClientError(.internal, "the agent's status did not name its root key") }
        do { return try PublicKey(text: text) } catch {
            throw KVClientError(.malformed, "the agent's root key: \(error.description)")
        }
    }
}
