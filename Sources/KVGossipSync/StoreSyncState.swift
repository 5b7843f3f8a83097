import KVGossipCore
import KVGossipNode
import KVGossipStore

/// The node's store as a sync session sees it. Applying goes through the same store calls as the
/// control API, so a peer's record is verified exactly like a client's; each record carries where
/// it came from into the store's change feed, where the gossip engine reads it (forward a pushed
/// record, not a pulled one).
public struct StoreSyncState: SyncLocalState {
    public let node: Node
    /// The peer's sync address: the origin recorded with what it sends.
    let peer: PeerAddress
    let exchange: @Sendable (_ keys: [Key], _ starting: Bool) -> Void
    let refusals: RefusalLog

    public init(node: Node, peer: PeerAddress, refusals: RefusalLog, exchange: @escaping @Sendable ([Key], Bool) -> Void = { _, _ in }) {
        self.node = node
        self.peer = peer
        self.refusals = refusals
        self.exchange = exchange
    }

    public var cluster: PublicKey { node.root }

    /// The tree hash, with every record it covers durable: a peer that finds it equal to its own
    /// takes its records as held here (Docs/architecture.md §Durability).
    public func treeHash() throws -> Hash256 {
        let hash = node.store.treeHash
        try node.store.syncPeerRecords()
        return hash
    }

    public func view(_ query: ViewQuery) throws -> MerkleNodeView { try node.store.summaryView(query) }

    public func entryCount(_ space: SummarySpace, under prefix: NibblePath) throws -> Int {
        try node.store.summaryCount(space, under: prefix)
    }

    public func records(at ids: [Hash256], maxBytes: Int, firstAnySize: Bool) throws -> (records: [Record], consumed: Int) {
        try node.store.records(atKeyHashes: ids, maxBytes: maxBytes, firstAnySize: firstAnySize)
    }

    public func revocations(for grantIDs: [Hash256]) throws -> [Revocation] { try node.store.revocations(for: grantIDs) }

    /// Looked up first, synced after: a record found here may be one another session committed
    /// and has not synced yet, and finding it answers the sender `duplicate`.
    public func storedDigests(of keys: [Key]) throws -> [Hash256?] {
        let digests = try node.store.digests(of: keys)
        try node.store.syncPeerRecords()
        return digests
    }

    public func apply(records: [Record], from peerName: String, arrival: RecordArrival) throws -> [PushResult] {
        guard !records.isEmpty else { return [] }
        let outcomes = try node.store.apply(records, origin: CommitOrigin(arrival, from: peer))
        return zip(records, outcomes).map { record, outcome -> PushResult in
            switch outcome {
            case .accepted: return PushResult(code: .accepted)
            case .duplicate: return PushResult(code: .duplicate)
            case .superseded: return PushResult(code: .superseded)
            case .refused(let refusal, let revocations):
                node.noteRefusal(refusal)
                refusals.note(refusal, "refused a record from a peer", ["peer": peerName, "key": record.key.path])
                return PushResult(code: .refused, reason: refusal.reason, detail: refusal.detail, revocations: revocations)
            }
        }
    }

    public func apply(revocations: [Revocation], from peerName: String) throws -> Int {
        var learned = false
        var refused = 0
        for (revocation, outcome) in zip(revocations, try node.store.apply(revocations: revocations)) {
            switch outcome {
            case .accepted(let unset, _):
                learned = true
                node.logger.notice("learned a revocation", metadata: [
                    "peer": "\(peerName)", "grant": "\(revocation.grantID.hex.prefix(16))", "unset": "\(unset.map(\.path))",
                ])
            case .duplicate:
                break
            case .refused(let refusal):
                refused += 1
                node.noteRefusal(refusal)
                refusals.note(refusal, "refused a revocation from a peer", ["peer": peerName])
            }
        }
        if learned { try node.refreshGrants() }
        return refused
    }

    public func willExchange(records ids: [Hash256], with peer: String) { exchange(keys(at: ids), true) }

    public func didExchange(records ids: [Hash256], with peer: String) { exchange(keys(at: ids), false) }

    /// Keys this node holds at these positions (a position it lacks has no key to mark yet): the
    /// keys alone, never the records (a peer's views decide how many positions there are).
    private func keys(at ids: [Hash256]) -> [Key] {
        (try? node.store.keys(atKeyHashes: ids)) ?? []
    }
}
