/// Whether a subscribed key's value may not be what the cluster holds, and why (Docs/contract.md §Key states).
///
/// The agent's own states (`pending-push`, `pending-fetch`, `unsynced`, `synced`) arrive as
/// ``agent(_:)``. The client adds three of its own, because a value it cannot currently confirm is
/// no better than one the agent has not fetched: while no agent is reachable, between
/// (re)connecting and the subscription's first answer on that connection, and while the agent's
/// latest record for the key failed the client's verification.
public enum Dirtiness: Sendable, Hashable, CustomStringConvertible {
    /// No agent is reachable; the value shown is the last one seen, possibly stale.
    case disconnected
    /// Connected, but this subscription's first answer on the connection has not arrived yet.
    case awaitingAnswer
    /// The agent's state for the key: `synced`, or a dirty reason such as `pending-push`.
    case agent(String)
    /// The agent's latest record for the key failed verification (an `unverified-record` error
    /// naming the key and the check). The value shown is
    /// the last one that verified; the forged one is never shown. Lasts until the agent sends a
    /// record that verifies, or a removal, or the connection changes.
    case unverified(KVClientError)

    /// The agent's state meaning "nothing pending".
    public static let synced = Dirtiness.agent("synced")

    /// True unless the agent reports the key `synced` on a live connection.
    public var isDirty: Bool { self != .synced }

    /// `disconnected`, `awaiting-answer`, `unverified (REASON)`, or the agent's state name.
    public var description: String {
        switch self {
        case .disconnected: "disconnected"
        case .awaitingAnswer: "awaiting-answer"
        case .agent(let state): state
        case .unverified(let error): "unverified (\(error.check ?? error.reason))"
        }
    }
}
