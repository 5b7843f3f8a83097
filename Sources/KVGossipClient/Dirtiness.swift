/// Whether a subscribed key's value may not be what the cluster holds, and why (Docs/contract.md §Key states).
///
/// The agent's own states (`pending-push`, `pending-fetch`, `unsynced`, `synced`) arrive as
/// ``agent(_:)``. The client adds two of its own, because a value it cannot currently confirm is
/// no better than one the agent has not fetched: while no agent is reachable, and between
/// (re)connecting and the subscription's first answer on that connection.
public enum Dirtiness: Sendable, Hashable, CustomStringConvertible {
    /// No agent is reachable; the value shown is the last one seen, possibly stale.
    case disconnected
    /// Connected, but this subscription's first answer on the connection has not arrived yet.
    case awaitingAnswer
    /// The agent's state for the key: `synced`, or a dirty reason such as `pending-push`.
    case agent(String)

    /// The agent's state meaning "nothing pending".
    public static let synced = Dirtiness.agent("synced")

    /// True unless the agent reports the key `synced` on a live connection.
    public var isDirty: Bool { self != .synced }

    /// `disconnected`, `awaiting-answer`, or the agent's state name.
    public var description: String {
        switch self {
        case .disconnected: "disconnected"
        case .awaitingAnswer: "awaiting-answer"
        case .agent(let state): state
        }
    }
}
