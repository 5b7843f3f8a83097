/// The side that opens a full session: compares tree hashes, walks both Merkle summaries towards
/// the differences (one round trip per level, all differing branches of a level in as few requests
/// as the limits allow), then sends its revocations at the differing grants, pulls what the peer
/// holds (in chunks, streamed back in batches) and sends its own records (in batches, answered one
/// by one, never stopping at a refused record). Messages in, messages out.
public struct SyncInitiator: Sendable {
    enum Phase: Sendable { case opening, walking, exchanging, closing, finished }

    public let state: any SyncLocalState
    public let limits: SyncLimits
    public private(set) var report = SyncReport()
    private var phase = Phase.opening
    private var asked: Set<ViewQuery> = []
    private var nextLevel: [ViewQuery] = []
    private var differing: [SummarySpace: [Hash256]] = [:]
    /// Positions of our records still to send, read a batch at a time (`SyncSession.nextBatch`).
    private var outgoing: ArraySlice<Hash256> = []
    /// Positions whose pulled record this node accepted meanwhile: what it now holds there is the
    /// peer's own, not to be sent back.
    private var acceptedFromPeer: Set<Hash256> = []
    private var awaitingResults = false
    /// Pull chunks still to ask for; the current one is answered when `pullOpen` turns false.
    private var pulls: [(records: [Hash256], revocations: [Hash256])] = []
    private var pullOpen = false
    private var refusalStreak = 0

    /// - Parameter peer: the peer's name, as its link identified it (for logs and reports).
    public init(state: any SyncLocalState, peer: String, limits: SyncLimits = .default) {
        self.state = state
        self.limits = limits
        report.peer = peer
    }

    public var isFinished: Bool { phase == .finished }

    public mutating func start() throws -> [SyncMessage] {
        [.open(.full, try state.treeHash())]
    }

    public mutating func receive(_ message: SyncMessage) throws -> [SyncMessage] {
        if case .failure(let text) = message {
            phase = .finished
            throw SyncProtocolError("peer \(report.peer) gave up: \(text)")
        }
        switch (phase, message) {
        case (.opening, .opened(let theirs)):
            if theirs == (try state.treeHash()) {
                report.alreadyEqual = true
                phase = .closing
                return [.done(theirs)]
            }
            phase = .walking
            return try request(SummarySpace.allCases.map { ViewQuery(space: $0, prefix: .root, entries: false) })
        case (.walking, .views(let answers)):
            // A level asked in several requests is answered in several messages; the walk moves
            // on only when every query of the level has its answer.
            var next = nextLevel
            for answer in answers {
                guard asked.remove(answer.query) != nil else { throw SyncProtocolError("a view that was not asked for") }
                guard answer.view.isWellFormed(at: answer.query.prefix, maxEntries: MerkleInternalNode.childCount) else {
                    throw SyncProtocolError("malformed view at \(answer.query.prefix)")
                }
                try compare(answer.query.space, answer.query.prefix, local: state.view(answer.query), remote: answer.view, next: &next)
            }
            guard asked.isEmpty else {
                nextLevel = next
                return []
            }
            nextLevel = []
            return next.isEmpty ? try beginExchange() : try request(next)
        case (.exchanging, .revocations(let revocations)):
            try SyncSession.apply(revocations: revocations, state: state, peer: report.peer, limits: limits, report: &report, streak: &refusalStreak)
            return []
        case (.exchanging, .pulled(let records, let last)):
            guard pullOpen else { throw SyncProtocolError("records that were not pulled") }
            pullOpen = !last
            report.recordsReceived += records.count
            let applied = records.isEmpty ? [] : try SyncSession.apply(records, arrival: .pulled, state: state, peer: report.peer, limits: limits, report: &report, streak: &refusalStreak)
            for (record, result) in zip(records, applied) where result.code == .accepted {
                acceptedFromPeer.insert(SummaryEntries.keyHash(record.key))
            }
            let results: [SyncMessage] = applied.isEmpty ? [] : [.results(applied)]
            return results + nextPull() + (try finishIfDone())
        case (.exchanging, .results(let results)):
            guard awaitingResults else { throw SyncProtocolError("results for records that were not sent") }
            awaitingResults = false
            try SyncSession.absorb(results, into: &report, state: state, peer: report.peer, limits: limits)
            return try sendNextBatch() + (try finishIfDone())
        case (.closing, .done(let theirs)):
            phase = .finished
            report.completedReconciliation = true
            report.equalAtEnd = theirs == (try state.treeHash())
            return []
        default:
            throw SyncProtocolError("unexpected \(message.kindName) while \(phase)")
        }
    }

    private mutating func request(_ queries: [ViewQuery]) throws -> [SyncMessage] {
        report.viewRequests += 1
        var messages: [SyncMessage] = []
        for part in SyncLimits.chunks(queries, of: limits.queriesPerRequest) {
            asked.formUnion(part)
            messages.append(.viewRequest(part))
        }
        return messages
    }

    /// Compares one position. Under a peer's leaf the peer's views are known already (its entries
    /// filtered), so the walk continues locally without another round trip.
    private mutating func compare(
        _ space: SummarySpace, _ prefix: NibblePath, local: MerkleNodeView, remote: MerkleNodeView, next: inout [ViewQuery]
    ) throws {
        if local.hash == remote.hash { return }
        guard prefix.depth < NibblePath.maxDepth, local.isInternal || remote.isInternal else {
            differing[space, default: []].append(contentsOf: MerkleDiff.differingIds(local.entries, remote.entries))
            return
        }
        for nibble in 0..<UInt8(MerkleInternalNode.childCount) {
            let child = prefix.child(nibble)
            guard local.childHash(nibble, at: child) != remote.childHash(nibble, at: child) else { continue }
            if remote.isInternal {
                next.append(ViewQuery(space: space, prefix: child, entries: false))
            } else {
                let localChild = try state.view(ViewQuery(space: space, prefix: child, entries: false))
                try compare(space, child, local: localChild, remote: remote.restricted(to: child), next: &next)
            }
        }
    }

    /// Revocations first (so records are judged against them), then the first pull, then our records.
    private mutating func beginExchange() throws -> [SyncMessage] {
        phase = .exchanging
        let recordIDs = differing[.records] ?? []
        let revocationIDs = differing[.revocations] ?? []
        report.recordDifferences = recordIDs.count
        report.revocationDifferences = revocationIDs.count
        if !recordIDs.isEmpty { state.willExchange(records: recordIDs, with: report.peer) }
        var messages: [SyncMessage] = []
        for chunk in SyncLimits.chunks(revocationIDs, of: limits.batchRevocations) {
            let revocations = try state.revocations(for: chunk)
            report.revocationsSent += revocations.count
            if !revocations.isEmpty { messages.append(.revocations(revocations)) }
        }
        let recordChunks = SyncLimits.chunks(recordIDs, of: limits.pullChunk)
        let revocationChunks = SyncLimits.chunks(revocationIDs, of: limits.pullChunk)
        for i in 0..<max(1, recordChunks.count, revocationChunks.count) {
            pulls.append((i < recordChunks.count ? recordChunks[i] : [], i < revocationChunks.count ? revocationChunks[i] : []))
        }
        outgoing = recordIDs[...]
        return messages + nextPull() + (try sendNextBatch())
    }

    private mutating func nextPull() -> [SyncMessage] {
        guard !pullOpen, !pulls.isEmpty else { return [] }
        let (records, revocations) = pulls.removeFirst()
        pullOpen = true
        return [.pull(records: records, revocations: revocations)]
    }

    private mutating func sendNextBatch() throws -> [SyncMessage] {
        guard !awaitingResults, !outgoing.isEmpty else { return [] }
        if !acceptedFromPeer.isEmpty {
            outgoing = outgoing.filter { !acceptedFromPeer.contains($0) }[...]
            acceptedFromPeer = []
        }
        let batch = try SyncSession.nextBatch(from: &outgoing, state: state, limits: limits)
        guard !batch.isEmpty else { return [] }  // none of the rest is held here
        report.recordsSent += batch.count
        awaitingResults = true
        return [.records(batch)]
    }

    private mutating func finishIfDone() throws -> [SyncMessage] {
        guard !pullOpen, pulls.isEmpty, !awaitingResults, outgoing.isEmpty, phase == .exchanging else { return [] }
        phase = .closing
        if let ids = differing[.records], !ids.isEmpty { state.didExchange(records: ids, with: report.peer) }
        return [.done(try state.treeHash())]
    }
}

extension MerkleNodeView {
    var isInternal: Bool { if case .internal = self { true } else { false } }

    var entries: [MerkleEntry] { if case .leaf(let e) = self { e } else { [] } }

    /// This position's view narrowed to one child prefix (only meaningful for leaves and empty).
    func restricted(to child: NibblePath) -> MerkleNodeView {
        MerkleNodeView(entries: entries.filter { child.contains($0.id) })
    }

    /// The hash of the child position `nibble`: stored for internal nodes, computed for leaves.
    func childHash(_ nibble: UInt8, at child: NibblePath) -> Hash256 {
        if case .internal(let children) = self { return children[Int(nibble)] }
        return restricted(to: child).hash
    }
}

extension SyncMessage {
    var kindName: String {
        switch self {
        case .open: "open"
        case .opened: "opened"
        case .viewRequest: "view request"
        case .views: "views"
        case .records: "records"
        case .pulled: "pulled records"
        case .revocations: "revocations"
        case .pull: "pull"
        case .results: "results"
        case .done: "done"
        case .failure: "failure"
        case .announce: "announce"
        }
    }
}
