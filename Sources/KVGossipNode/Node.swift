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
    /// Where key states live (the gossip engine's state machine); until one is attached, keys are
    /// in the state a node starts in.
    private let keyStateSource = Mutex<(any KeyStateSource)?>(nil)
    private let initialState: KeyState
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
        initialState = peersExpected ? .unsynced : .synced
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

    /// What this node presents to be admitted, on links and to clients of its TCP control listener
    /// (Docs/contract.md §Admission): the grants chaining its key to the root, membership first.
    public var credential: [Grant] {
        let grants = (try? store.grants()) ?? []
        return store.validator.search.credential(
            of: publicKey, atMs: store.clock(), pool: grants, isRevoked: store.isRevoked, maxGrants: LinkIdentity.maxCredentialGrants) ?? []
    }

    /// Nil when this node admits `identity` now (a peer, or a client of the TCP control listener);
    /// otherwise why not, against this node's revocations and clock.
    public func admissionRefusal(of identity: LinkIdentity) -> Refusal? {
        Admission.refusal(of: identity, search: store.validator.search, nowMs: store.clock(), isRevoked: store.isRevoked)
    }

    /// The chain of grants that admits `identity` now, as `LinkEviction` reads it.
    public func lineage(of identity: LinkIdentity) -> [Hash256] {
        Admission.lineage(of: identity, search: store.validator.search, nowMs: store.clock(), isRevoked: store.isRevoked)
    }

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

    /// Applies a record a client signed and handed to this node (the control API's `put`): checked
    /// like a record from anywhere, and in addition fresh. Grants are judged at the record's own
    /// time, which its signer picks, so a holder whose grant has expired could otherwise sign a
    /// record dated just before the expiry and have it accepted for good. A client signs with the
    /// current time (Docs/contract.md §Ordering), so a record more than `max-skew` behind this
    /// node's clock is refused here, where it enters the network. Records between peers are judged
    /// at their own time only, so every node reaches the same verdict.
    public func acceptClientRecord(_ record: Record) throws -> ApplyOutcome {
        let now = store.clock()
        let maxSkew = store.validator.limits.maxSkewMs
        if record.timestamp.isTooFarBehind(ofNowMs: now, maxSkewMs: maxSkew) {
            let refusal = Refusal(
                .clockSkew,
                "record time \(record.timestamp.rfc3339) is more than \(maxSkew / 1000) s behind this node's clock: a new record must be signed with the current time")
            noteRefusal(refusal)
            return .refused(refusal, revocations: [])
        }
        return try store.apply(record)
    }

    /// What is wrong with this node and needs an operator now (for `status`).
    public var problems: [String] {
        var problems: [String] = []
        if let failed = store.syncFailure { problems.append(failed) }
        if let jump = store.clockWentBack {
            problems.append("this node's clock went back: it minted a record dated \(jump.lastMinted.rfc3339), \(jump.seconds) s ahead of its clock when that was noticed; new records are dated by the clock (keys written during the jump keep their later values until the clock passes them)")
        }
        return problems
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

    // MARK: Dirtiness (Docs/contract.md §Key states): the gossip engine owns the states.

    /// Makes `source` the authority on key states.
    public func attach(keyStates source: any KeyStateSource) {
        keyStateSource.withLock { $0 = source }
    }

    /// The state of every key without one of its own.
    public var defaultKeyState: KeyState { keyStateSource.withLock { $0 }?.defaultKeyState ?? initialState }

    public func state(of key: Key) -> KeyState {
        keyStateSource.withLock { $0 }?.keyState(of: key) ?? initialState
    }

    /// Dirty keys among the `liveKeys` keys the store holds, by state: the one count `status`,
    /// the mount and `/metrics` show.
    public func dirtyCounts(liveKeys: Int) -> [KeyState: Int] {
        if let source = keyStateSource.withLock({ $0 }) { return source.dirtyCounts(liveKeys: liveKeys) }
        return initialState.isDirty && liveKeys > 0 ? [initialState: liveKeys] : [:]
    }

    /// A change of dirtiness: one key's state, or the default state of every key without one.
    public enum StateChange: Sendable, Equatable {
        case key(Key, KeyState)
        case all(KeyState)
    }

    /// Tells watchers of state changes (called by whoever owns the states).
    public func publish(_ changes: [StateChange]) {
        guard !changes.isEmpty else { return }
        let observers = stateObservers.withLock { Array($0.values) }
        for observer in observers {
            for change in changes { observer(change) }
        }
        let feeds = stateFeed.withLock { Array($0.values) }
        for c in feeds {
            for change in changes { c.yield(change) }
        }
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

    /// Counts a refusal by reason, for `status`; every shell that refuses something reports here.
    public func noteRefusal(_ refusal: Refusal) {
        refusals.withLock { $0[refusal.reason, default: 0] += 1 }
    }

    public var refusalCounts: [RefusalReason: Int] { refusals.withLock { $0 } }

}

/// Whoever owns key states, as the node reads them (the gossip engine's state machine).
public protocol KeyStateSource: Sendable {
    var defaultKeyState: KeyState { get }
    func keyState(of key: Key) -> KeyState
    func dirtyCounts(liveKeys: Int) -> [KeyState: Int]
}
