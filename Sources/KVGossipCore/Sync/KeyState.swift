/// Whether this node knows a key's value may differ from what the cluster holds
/// (Docs/contract.md §Key states).
public enum KeyState: String, Sendable, Codable, CaseIterable {
    /// Minted here; no peer has acknowledged it yet.
    case pendingPush = "pending-push"
    /// A newer version was announced by a peer and is not yet fetched and verified.
    case pendingFetch = "pending-fetch"
    /// This node has not completed a sync with any peer since it started.
    case unsynced
    case synced

    public var isDirty: Bool { self != .synced }
}
