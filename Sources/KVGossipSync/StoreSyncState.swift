import KVGossipCore
import KVGossipNode
import KVGossipStore

/// The node's store as a sync session sees it. Applying goes through the same store calls as the
/// control API, so a peer's record is verified exactly like a client's.
public struct StoreSyncState: SyncLocalState {
    public let node: Node
    /// Called with records from a peer before they are applied, so whoever follows the store's
    /// changes already knows where an accepted record came from (push forwarding skips that peer).
    let onReceiving: @Sendable ([Record], String) -> Void
    /// Called after applying with the digests of records that were not accepted (duplicates,
    /// superseded, refused): they cause no change, so nobody else will forget their origin.
    let onNotAccepted: @Sendable ([Hash256]) -> Void
    let onGreeted: @Sendable (SyncHello) -> Void

    public init(
        node: Node, onReceiving: @escaping @Sendable ([Record], String) -> Void = { _, _ in },
        onNotAccepted: @escaping @Sendable ([Hash256]) -> Void = { _ in },
        onGreeted: @escaping @Sendable (SyncHello) -> Void = { _ in }
    ) {
        self.node = node
        self.onReceiving = onReceiving
        self.onNotAccepted = onNotAccepted
        self.onGreeted = onGreeted
    }

    public func greeted(by hello: SyncHello) { onGreeted(hello) }

    public var cluster: PublicKey { node.root }

    public func treeHash() throws -> Hash256 { node.store.treeHash }

    public func view(_ query: ViewQuery) throws -> MerkleNodeView { try node.store.summaryView(query) }

    public func records(at ids: [Hash256]) throws -> [Record] { try node.store.records(atKeyHashes: ids) }

    public func revocations(for grantIDs: [Hash256]) throws -> [Revocation] { try node.store.revocations(for: grantIDs) }

    public func apply(records: [Record], from peer: String) throws -> [PushResult] {
        guard !records.isEmpty else { return [] }
        onReceiving(records, peer)
        let outcomes = try node.store.apply(records)
        let notAccepted = zip(records, outcomes).filter { !$0.1.isAccepted }.map(\.0.digest)
        if !notAccepted.isEmpty { onNotAccepted(notAccepted) }
        let results = zip(records, outcomes).map { record, outcome -> PushResult in
            switch outcome {
            case .accepted:
                return PushResult(code: .accepted)
            case .duplicate: return PushResult(code: .duplicate)
            case .superseded: return PushResult(code: .superseded)
            case .refused(let refusal, let revocations):
                node.noteRefusal(refusal)
                node.logger.info("refused a record from a peer", metadata: [
                    "peer": "\(peer)", "key": "\(record.key)", "reason": "\(refusal.reason.rawValue)", "detail": "\(refusal.detail)",
                ])
                return PushResult(code: .refused, reason: refusal.reason, detail: refusal.detail, revocations: revocations)
            }
        }
        return results
    }

    public func willExchange(records ids: [Hash256], with peer: String) {
        for key in keys(at: ids) where node.state(of: key) != .pendingPush { node.setState(.pendingFetch, for: key) }
    }

    public func didExchange(records ids: [Hash256], with peer: String) {
        for key in keys(at: ids) where node.state(of: key) == .pendingFetch { node.setState(.synced, for: key) }
    }

    /// Keys this node holds at these positions (a position it lacks has no key to mark yet).
    private func keys(at ids: [Hash256]) -> [Key] {
        ((try? node.store.records(atKeyHashes: ids)) ?? []).map(\.key)
    }

    public func apply(revocations: [Revocation], from peer: String) throws {
        var learned = false
        for revocation in revocations {
            switch try node.store.apply(revocation) {
            case .accepted(let unset, _):
                learned = true
                node.logger.notice("learned a revocation", metadata: [
                    "peer": "\(peer)", "grant": "\(revocation.grantID.hex.prefix(16))", "unset": "\(unset.map(\.path))",
                ])
            case .duplicate:
                break
            case .refused(let refusal):
                node.noteRefusal(refusal)
                node.logger.warning("refused a revocation from a peer", metadata: ["peer": "\(peer)", "reason": "\(refusal)"])
            }
        }
        if learned { try node.refreshGrants() }
    }
}
