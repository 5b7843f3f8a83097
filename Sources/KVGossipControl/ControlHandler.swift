import Foundation
import KVGossipCore
import KVGossipNode
import KVGossipStore

/// Turns control requests into node calls. No transport here: `ControlServer` moves the frames.
public struct ControlHandler: Sendable {
    public enum Transport: Sendable {
        /// The local socket, protected by file permissions: every operation.
        case local
        /// TCP: only self-authenticating objects (client-signed records, revocations) and reads.
        case remote
    }

    public let node: Node
    public let mountpoint: String?
    public let peers: @Sendable () async -> [PeerInfo]
    /// Runs `kvgossip sync`: the peer's HOST:PORT, or nil for every known peer.
    public let sync: @Sendable (String?) async throws -> [SyncSummary]
    public let startedAt: String
    /// The node's name, for `status`.
    public let nodeName: String?
    /// What needs an operator now (a Serf agent that quit for good, a lost mount), for `status`.
    public let health: @Sendable () -> AgentHealth
    /// Page sizes and the caps on connections and watches.
    public let limits: ControlLimits
    let shadowedValues: ShadowedValues
    let counts: StatusCounts
    /// The versions this node keeps, for `history` (signers named as `signerNames` says).
    public let history: HistoryReader

    public init(
        node: Node, mountpoint: String?, nodeName: String? = nil, limits: ControlLimits = .default,
        peers: @escaping @Sendable () async -> [PeerInfo] = { [] },
        health: @escaping @Sendable () -> AgentHealth = { AgentHealth() },
        sync: @escaping @Sendable (String?) async throws -> [SyncSummary] = { _ in
            throw ControlError(reason: "unavailable", message: "this agent runs without peers")
        },
        peerNames: @escaping @Sendable () -> [PublicKey: String] = { [:] }
    ) {
        self.node = node
        self.mountpoint = mountpoint
        self.nodeName = nodeName
        self.peers = peers
        self.health = health
        self.sync = sync
        self.limits = limits
        shadowedValues = ShadowedValues(store: node.store)
        counts = StatusCounts(store: node.store)
        // A node may sign with the root key itself (small clusters, tests): then it is "root".
        var names = [node.publicKey: nodeName ?? "this node"]
        names[node.root] = "root"
        let own = names
        history = HistoryReader(store: node.store, limits: limits) { peerNames().merging(own) { _, mine in mine } }
        startedAt = HLC(physicalMs: node.store.clock()).rfc3339
    }

    public func handle(_ req: ControlRequest, transport: Transport) -> ControlResponse {
        do {
            if transport == .remote, [.mint, .delete, .grantsAdd].contains(req.op) {
                let instead = req.op == .grantsAdd ? "give the agent its grants on its host" : "send a client-signed record with put"
                return .failure(req.id, "no-authority", "\(req.op.rawValue) signs with this node's key or changes what it signs with, and is only served on the local socket; \(instead)")
            }
            switch req.op {
            case .get: return try get(req)
            case .list: return try list(req)
            case .put: return try put(req)
            case .mint: return try mint(req, value: req.value.map { [UInt8]($0) } ?? [])
            case .delete: return try mint(req, value: nil)
            case .grantsAdd: return try grantsAdd(req)
            case .grantsList: return try grantsList(req)
            case .revoke: return try revoke(req)
            case .history: return try versions(req)
            case .status, .sync, .watch, .unwatch:
                return .failure(req.id, "bad-request", "\(req.op.rawValue) is served asynchronously")
            }
        } catch let error as ControlError {
            return .failure(req.id, error.reason, error.message)
        } catch {
            return .failure(req.id, "internal", "\(error)")
        }
    }

    // MARK: Reads

    func get(_ req: ControlRequest) throws -> ControlResponse {
        let key = try parseKey(req.key)
        guard let record = try node.store.record(key), record.kind == .value || req.includeTombstones == true else {
            return .failure(req.id, "not-found", "\(key) has no value on this node")
        }
        var r = ControlResponse(id: req.id)
        r.record = info(record, withEncoding: req.includeEncoding == true)
        return r
    }

    /// `history`: one page of the versions of a key or of the keys matching a pattern.
    func versions(_ req: ControlRequest) throws -> ControlResponse {
        var pattern: Pattern?
        if let text = req.pattern {
            do { pattern = try Pattern(text) } catch { throw ControlError(reason: "bad-request", message: error.description) }
        }
        let key = req.key == nil ? nil : try parseKey(req.key)
        if (key == nil) == (pattern == nil) { throw ControlError(reason: "bad-request", message: "history needs a key or a pattern") }
        let page = try history.page(key: key, pattern: pattern, after: req.after, limit: req.limit, encoding: req.includeEncoding == true)
        var r = ControlResponse(id: req.id)
        r.versions = page.versions
        r.next = page.next
        return r
    }

    // MARK: Writes

    func put(_ req: ControlRequest) throws -> ControlResponse {
        guard let bytes = req.object else { throw ControlError(reason: "bad-request", message: "put needs a record") }
        let record: Record
        do { record = try Record(decoding: [UInt8](bytes), limits: node.store.validator.limits) } catch {
            node.noteRefusal(error)
            throw ControlError(reason: error.reason.rawValue, message: error.detail)
        }
        return try answer(req, record, try node.acceptClientRecord(record))
    }

    func mint(_ req: ControlRequest, value: [UInt8]?) throws -> ControlResponse {
        let key = try parseKey(req.key)
        if value == nil, try node.store.record(key)?.kind != .value {
            return .failure(req.id, "not-found", "\(key) has no value on this node")
        }
        let (record, outcome) = try node.mint(key, value: value)
        return try answer(req, record, outcome)
    }

    /// A write's answer: the outcome and the key's winning record (with its encoding when asked,
    /// so a client can verify it like a read).
    func answer(_ req: ControlRequest, _ record: Record, _ outcome: ApplyOutcome) throws -> ControlResponse {
        let id = req.id
        switch outcome {
        case .refused(let refusal, let revocations):
            node.noteRefusal(refusal)
            // The sender learns the revocations that refused it (Docs/contract.md §Revocation).
            var r = ControlResponse.failure(id, refusal.reason.rawValue, refusal.detail)
            if !revocations.isEmpty { r.unset = revocations.map(\.grantID.hex) }
            return r
        case .accepted, .duplicate, .superseded:
            var r = ControlResponse(id: id)
            r.outcome = switch outcome {
            case .accepted: "accepted"
            case .duplicate: "duplicate"
            default: "superseded"
            }
            r.record = info(try node.store.record(record.key) ?? record, withEncoding: req.includeEncoding == true)
            return r
        }
    }

    func grantsAdd(_ req: ControlRequest) throws -> ControlResponse {
        var grants: [Grant] = []
        for bytes in req.grants ?? [] {
            do { grants.append(try Grant(decoding: [UInt8](bytes), limits: node.store.validator.limits)) } catch {
                throw ControlError(reason: error.reason.rawValue, message: error.detail)
            }
        }
        let outcomes = try node.addGrants(grants)
        var r = ControlResponse(id: req.id)
        r.grantResults = zip(grants, outcomes).map { g, o in
            switch o {
            case .added: "\(g.id.hex) added"
            case .duplicate: "\(g.id.hex) already present"
            case .refused(let refusal): "\(g.id.hex) refused: \(refusal)"
            }
        }
        // Each grant stands alone: those refused are named, with the first refusal's reason as the
        // answer's, and the others are kept.
        let firstRefusal = outcomes.lazy.compactMap { if case .refused(let refusal) = $0 { refusal } else { nil } }.first
        r.ok = firstRefusal == nil
        if let firstRefusal { r.error = ControlError(reason: firstRefusal.reason.rawValue, message: r.grantResults!.joined(separator: "; ")) }
        return r
    }

    func grantsList(_ req: ControlRequest) throws -> ControlResponse {
        var r = ControlResponse(id: req.id)
        r.grants = try node.store.grants().map { GrantInfo($0, revoked: node.store.isRevoked($0.id)) }
        return r
    }

    func revoke(_ req: ControlRequest) throws -> ControlResponse {
        guard let bytes = req.object else { throw ControlError(reason: "bad-request", message: "revoke needs a revocation") }
        let revocation: Revocation
        do { revocation = try Revocation(decoding: [UInt8](bytes), limits: node.store.validator.limits) } catch {
            throw ControlError(reason: error.reason.rawValue, message: error.detail)
        }
        switch try node.store.apply(revocation) {
        case .refused(let refusal):
            node.noteRefusal(refusal)
            return .failure(req.id, refusal.reason.rawValue, refusal.detail)
        case .duplicate:
            var r = ControlResponse(id: req.id)
            r.outcome = "duplicate"
            r.unset = []
            return r
        case .accepted(let unset, _):
            try node.refreshGrants()
            var r = ControlResponse(id: req.id)
            r.outcome = "accepted"
            r.unset = unset.map(\.path)
            return r
        }
    }

    /// Status and sync wait on the gossip engine, so they are async.
    public func handleAsync(_ req: ControlRequest) async -> ControlResponse {
        do {
            switch req.op {
            case .status:
                return status(req, peers: await peers())
            case .sync:
                var r = ControlResponse(id: req.id)
                r.syncs = try await sync(req.peer)
                r.ok = r.syncs?.allSatisfy(\.ok) ?? true
                if !r.ok { r.error = ControlError(reason: "unavailable", message: r.syncs?.compactMap(\.error).joined(separator: "; ") ?? "") }
                return r
            default:
                return handle(req, transport: .local)
            }
        } catch let error as ControlError {
            return .failure(req.id, error.reason, error.message)
        } catch {
            return .failure(req.id, "internal", "\(error)")
        }
    }

    /// `status`, given the peer list (blocking: reads the store).
    ///
    /// The store's reads may fail (a disk giving I/O errors), and that is when an operator asks:
    /// `status` still answers, with the last counts it had (or none), and says among its problems
    /// what it could not read.
    func status(_ req: ControlRequest, peers: [PeerInfo]) -> ControlResponse {
        var r = ControlResponse(id: req.id)
        var unread: [String] = []
        func reading<T>(_ what: String, _ read: () throws -> T) -> T? {
            do { return try read() } catch {
                unread.append("status could not read \(what) from the store: \(error)")
                return nil
            }
        }
        let counts = reading("its counts") { try self.counts.current() } ?? self.counts.lastCounted
        let shadowed = reading("the shadowed values") { try shadowedValues.snapshot(settlingUpTo: ShadowedValues.stepRows) }
        let values = counts?.values ?? 0
        r.status = StatusInfo(
            node: node.publicKey.text, fingerprint: node.publicKey.fingerprint, root: node.root.text,
            treeHash: (counts?.treeHash ?? node.store.treeHash).hex, records: values, revocations: counts?.revocations ?? 0,
            grants: reading("the grants held") { try node.store.heldGrantCount() } ?? 0, mount: mountpoint,
            dirty: Dictionary(uniqueKeysWithValues: node.dirtyCounts(liveKeys: values).map { ($0.key.rawValue, $0.value) }),
            refusals: Dictionary(uniqueKeysWithValues: node.refusalCounts.map { ($0.key.rawValue, $0.value) }),
            peers: peers, shadowed: shadowed?.first ?? [], startedAt: startedAt)
        r.status?.shadowedTotal = shadowed?.total
        r.status?.shadowedUpToDate = shadowed?.upToDate
        r.status?.name = nodeName
        r.status?.pid = getpid()
        let health = health()
        r.status?.problems = health.problems + unread
        r.status?.mountLosses = health.mountLosses
        r.status?.warnings = health.warnings
        return r
    }

    // MARK: Helpers

    /// The record as clients see it; with `withEncoding` the encoding replaces the value, which
    /// then travels inside it (the value is never sent twice).
    public func info(_ record: Record, withEncoding: Bool = false) -> RecordInfo {
        let state = node.state(of: record.key)
        return RecordInfo(
            key: record.key.path, kind: record.kind == .value ? "value" : "tombstone", value: Data(record.value),
            timestamp: record.timestamp.raw, time: record.timestamp.rfc3339, signer: record.signer.text,
            digest: record.digest.hex, chain: record.signer == node.root ? ["root"] : node.chain(of: record).map(\.chainLine),
            state: state.rawValue, dirty: state.isDirty, encoded: withEncoding ? Data(record.encoded) : nil)
    }

    func parseKey(_ text: String?) throws -> Key {
        guard let text else { throw ControlError(reason: "bad-request", message: "a key is required") }
        do { return try Key(text) } catch { throw ControlError(reason: "invalid-key", message: error.description) }
    }
}

/// The agent's own condition, as `status` and the metrics report it.
public struct AgentHealth: Sendable, Equatable {
    /// One sentence per problem that needs an operator now.
    public var problems: [String]
    /// Times the mount was unmounted from outside since start.
    public var mountLosses: Int
    /// Risks worth knowing that need no action to keep working (gossip unencrypted beyond this host).
    public var warnings: [String]

    public init(problems: [String] = [], mountLosses: Int = 0, warnings: [String] = []) {
        self.problems = problems
        self.mountLosses = mountLosses
        self.warnings = warnings
    }
}
