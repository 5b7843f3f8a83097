import KVGossipCore
import KVGossipStore
import Logging
import Synchronization

/// One host's view of the cluster: its store, its own key and the grants that key was given.
/// The mount, the control API and (later) gossip all go through here, so they mint, check
/// writability and report state the same way.
public final class Node: Sendable {
    public let store: Store
    public let key: SigningKey
    public let logger: Logger
    private let ownGrants: Mutex<[Grant]>
    private let states = Mutex<[Key: KeyState]>([:])
    private let defaultState: Mutex<KeyState>
    private let refusals = Mutex<[RefusalReason: Int]>([:])
    private let stateFeed = Mutex<[Int: AsyncStream<StateChange>.Continuation]>([:])
    private let stateObservers = Mutex<[Int: @Sendable (StateChange) -> Void]>([:])
    private let nextFeedID = Mutex(0)

    /// - Parameter peersExpected: false for a node with no peers at all, whose tree is trivially
    ///   in sync; true starts every key `unsynced` until the first completed sync.
    public init(store: Store, key: SigningKey, peersExpected: Bool = false, logger: Logger = Logger(label: "kvgossip.node")) throws {
        self.store = store
        self.key = key
        self.logger = logger
        self.ownGrants = Mutex(try store.grants())
        self.defaultState = Mutex(peersExpected ? .unsynced : .synced)
    }

    public var root: PublicKey { store.root }
    public var publicKey: PublicKey { key.publicKey }

    /// The chain that lets this node write `key` now (empty for the root), or nil.
    public func proof(for key: Key) -> [Grant]? {
        let grants = ownGrants.withLock { $0 }
        return store.validator.search.authorize(
            key: key, signer: publicKey, atMs: store.clock(), pool: grants, isRevoked: store.isRevoked
        ).chain
    }

    public func mayWrite(_ key: Key) -> Bool { proof(for: key) != nil }

    /// Mints and applies a value (nil: a tombstone) signed by this node's key. Refuses up front
    /// with `no-authority` when this node holds no grant for the key.
    public func mint(_ key: Key, value: [UInt8]?) throws -> (Record, ApplyOutcome) {
        guard let chain = proof(for: key) else {
            let record = Record(cluster: root, key: key, kind: .tombstone, value: [], timestamp: HLC(raw: 0), signer: self.key, pool: [])
            return (record, .refused(Refusal(.noAuthority, "this node (\(publicKey.fingerprint)) holds no grant for \(key)"), revocations: []))
        }
        if let value, value.count > store.validator.limits.maxValueBytes {
            let record = Record(cluster: root, key: key, kind: .tombstone, value: [], timestamp: HLC(raw: 0), signer: self.key, pool: [])
            return (record, .refused(Refusal(.tooLarge, "value is \(value.count) bytes, limit \(store.validator.limits.maxValueBytes)"), revocations: []))
        }
        let result = try store.mint(key: key, value: value, signer: self.key, pool: chain)
        if case .refused(let refusal, _) = result.1 { noteRefusal(refusal) }
        if result.1 == .accepted { logger.debug("minted", metadata: ["key": "\(key)", "ts": "\(result.0.timestamp.raw)"]) }
        return result
    }

    /// Stores grants for this node's later mints, and refreshes its own grant list.
    public func addGrants(_ grants: [Grant]) throws -> [GrantAddOutcome] {
        let outcomes = try store.addGrants(grants)
        let all = try store.grants()
        ownGrants.withLock { $0 = all }
        return outcomes
    }

    /// Called after a revocation so minting stops using the revoked grant.
    public func refreshGrants() throws {
        let all = try store.grants()
        ownGrants.withLock { $0 = all }
    }

    /// The chain that authorizes a stored record, root first, for `getfattr` and `get`.
    public func chain(of record: Record) -> [Grant] {
        store.validator.recheck(record, isRevoked: store.isRevoked).chain ?? []
    }

    // MARK: Dirtiness (Docs/contract.md §Key states); the gossip engine sets per-key states.

    /// The state of every key without one of its own: `unsynced` until the first completed
    /// reconciliation (when peers are expected), then `synced`.
    public var defaultKeyState: KeyState { defaultState.withLock { $0 } }

    public func state(of key: Key) -> KeyState {
        states.withLock { $0[key] } ?? defaultState.withLock { $0 }
    }

    public func setState(_ state: KeyState, for key: Key) {
        let changed = states.withLock { states -> Bool in
            let old = states[key]
            states[key] = state == .synced ? nil : state
            return old != states[key]
        }
        if changed { publish(.key(key, state)) }
    }

    public func setDefaultState(_ state: KeyState) {
        let changed = defaultState.withLock { current -> Bool in
            defer { current = state }
            return current != state
        }
        if changed { publish(.all(state)) }
    }

    /// A change of dirtiness: one key's state, or the default state of every key without one.
    public enum StateChange: Sendable, Equatable {
        case key(Key, KeyState)
        case all(KeyState)
    }

    /// Every dirtiness change from now on (for watchers and clients).
    public func stateChanges() -> AsyncStream<StateChange> {
        let (stream, continuation) = AsyncStream.makeStream(of: StateChange.self, bufferingPolicy: .bufferingNewest(10_000))
        let id = nextFeedID.withLock { n -> Int in
            n += 1
            return n
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.stateFeed.withLock { $0.removeValue(forKey: id) }
        }
        stateFeed.withLock { $0[id] = continuation }
        return stream
    }

    /// Calls `body` with every dirtiness change, on the thread that made it, until the returned
    /// observation is cancelled or released: for consumers that must not miss one (a stream
    /// keeps only the newest 10,000). `body` must be quick.
    public func observeStateChanges(_ body: @escaping @Sendable (StateChange) -> Void) -> CommitObservation {
        let id = nextFeedID.withLock { n -> Int in
            n += 1
            return n
        }
        stateObservers.withLock { $0[id] = body }
        return CommitObservation { [weak self] in _ = self?.stateObservers.withLock { $0.removeValue(forKey: id) } }
    }

    private func publish(_ change: StateChange) {
        for observer in stateObservers.withLock({ Array($0.values) }) { observer(change) }
        for c in stateFeed.withLock({ Array($0.values) }) { c.yield(change) }
    }

    /// Counts a refusal by reason, for `status`; every shell that refuses something reports here.
    public func noteRefusal(_ refusal: Refusal) {
        refusals.withLock { $0[refusal.reason, default: 0] += 1 }
    }

    public var refusalCounts: [RefusalReason: Int] { refusals.withLock { $0 } }

    /// Keys with a dirty state of their own (the default state is not counted: see `defaultKeyState`).
    public var dirtyCounts: [KeyState: Int] {
        states.withLock { Dictionary(grouping: $0.values, by: { $0 }).mapValues(\.count) }
    }
}

extension Grant {
    /// One line of the `chain` xattr and of `kvgossip get`: who gave whom what.
    public var chainLine: String {
        "\(issuer.fingerprint) -> \(issuee.fingerprint) \(patterns.map(\.text).joined(separator: ","))\(mayDelegate ? " delegate" : "") grant=\(id.hex.prefix(16))"
    }
}
