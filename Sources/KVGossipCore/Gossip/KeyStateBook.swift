/// Which keys are dirty and why (Docs/contract.md §Key states): the one place that knows, so
/// `status`, the mount's attributes, watchers and `/metrics` all count the same thing.
public struct KeyStateBook: Sendable, Equatable {
    /// Keys minted here, with the digest of the version no peer has acknowledged yet.
    public private(set) var pendingPush: [Key: Hash256] = [:]
    /// Keys a session found differing and has not finished exchanging.
    public private(set) var pendingFetch: [Key: Int] = [:]
    /// The state of every key without one of its own: `unsynced` until this node has compared
    /// its tree with an admitted peer (when it has peers at all), then `synced`.
    public private(set) var defaultState: KeyState

    public init(expectsPeers: Bool) {
        defaultState = expectsPeers ? .unsynced : .synced
    }

    public func state(of key: Key) -> KeyState {
        if pendingPush[key] != nil { return .pendingPush }
        if pendingFetch[key] != nil { return .pendingFetch }
        return defaultState
    }

    /// Keys whose own state differs from the default, by state.
    public var counts: [KeyState: Int] {
        var out: [KeyState: Int] = [:]
        if !pendingPush.isEmpty { out[.pendingPush] = pendingPush.count }
        let fetchOnly = pendingFetch.keys.filter { pendingPush[$0] == nil }.count
        if fetchOnly > 0 { out[.pendingFetch] = fetchOnly }
        return out
    }

    /// Dirty keys among `liveKeys` keys, by state: own states first, the default for the rest.
    public func dirtyCounts(liveKeys: Int) -> [KeyState: Int] {
        var out = counts
        let own = out.values.reduce(0, +)
        if defaultState.isDirty, liveKeys > own { out[defaultState, default: 0] += liveKeys - own }
        return out
    }

    // MARK: Changes (each returns the keys whose state changed)

    mutating func minted(_ key: Key, digest: Hash256) -> Bool {
        let before = state(of: key)
        pendingPush[key] = digest
        return state(of: key) != before
    }

    /// A peer holds `digest` for `key` now (it accepted it, had it, or has something newer).
    mutating func acknowledged(_ key: Key, digest: Hash256) -> Bool {
        guard pendingPush[key] == digest else { return false }
        let before = state(of: key)
        pendingPush[key] = nil
        return state(of: key) != before
    }

    mutating func willExchange(_ keys: [Key]) -> [Key] {
        keys.filter { key in
            let before = state(of: key)
            pendingFetch[key, default: 0] += 1
            return state(of: key) != before
        }
    }

    mutating func didExchange(_ keys: [Key]) -> [Key] {
        keys.filter { key in
            guard let n = pendingFetch[key] else { return false }
            let before = state(of: key)
            pendingFetch[key] = n > 1 ? n - 1 : nil
            return state(of: key) != before
        }
    }

    /// Returns whether the default changed.
    mutating func setDefault(_ state: KeyState) -> Bool {
        defer { defaultState = state }
        return defaultState != state
    }
}
