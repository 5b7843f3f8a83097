/// The side that dials: compares tree hashes, walks both Merkle summaries towards the
/// differences (one round trip per level, all differing branches of a level in one request),
/// then sends what it holds at the differing positions and pulls what the peer holds — in
/// batches, answered one by one, never stopping at a refused record. Messages in, messages out.
public struct SyncInitiator: Sendable {
    enum Phase: Sendable { case hello, walking, exchanging, closing, finished }

    public let state: any SyncLocalState
    public let localName: String
    public let syncPort: UInt16
    public let limits: SyncLimits
    public private(set) var report = SyncReport()
    private var phase = Phase.hello
    private var asked: Set<ViewQuery> = []
    private var nextLevel: [ViewQuery] = []
    private var differing: [SummarySpace: [Hash256]] = [:]
    private var outgoing: [[Record]] = []
    private var awaitingResults = false
    private var pullComplete = false

    public init(state: any SyncLocalState, localName: String, syncPort: UInt16, limits: SyncLimits = .default) {
        self.state = state
        self.localName = localName
        self.syncPort = syncPort
        self.limits = limits
    }

    public var isFinished: Bool { phase == .finished }

    public mutating func start() throws -> [SyncMessage] {
        [.hello(SyncHello(cluster: state.cluster, treeHash: try state.treeHash(), nodeName: localName, syncPort: syncPort))]
    }

    public mutating func receive(_ message: SyncMessage) throws -> [SyncMessage] {
        if case .failure(let text) = message {
            phase = .finished
            throw SyncProtocolError("peer \(report.peer) gave up: \(text)")
        }
        switch (phase, message) {
        case (.hello, .hello(let hello)):
            report.peer = hello.nodeName
            if let problem = SyncSession.incompatibility(hello, cluster: state.cluster) {
                phase = .finished
                return [.failure(problem)]
            }
            if hello.treeHash == (try state.treeHash()) {
                report.alreadyEqual = true
                phase = .closing
                return [.done(hello.treeHash)]
            }
            phase = .walking
            return try request(SummarySpace.allCases.map { ViewQuery(space: $0, prefix: .root, entries: false) })
        case (.walking, .views(let answers)):
            // A level asked in several requests is answered in several messages; the walk moves
            // on only when every query of the level has its answer.
            var next = nextLevel
            for answer in answers {
                guard asked.remove(answer.query) != nil else { throw SyncProtocolError("a view that was not asked for") }
                guard answer.view.isWellFormed(at: answer.query.prefix, maxEntries: limits.maxViewEntries) else {
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
            report.revocationsReceived += revocations.count
            try state.apply(revocations: revocations, from: report.peer)
            return []
        case (.exchanging, .pulled(let records, let last)):
            guard !pullComplete else { throw SyncProtocolError("records after the last pulled batch") }
            pullComplete = last
            report.recordsReceived += records.count
            let results: [SyncMessage] = records.isEmpty ? [] : [.results(try state.apply(records: records, from: report.peer))]
            return results + (try finishIfDone())
        case (.exchanging, .results(let results)):
            guard awaitingResults else { throw SyncProtocolError("results for records that were not sent") }
            awaitingResults = false
            try SyncSession.absorb(results, into: &report, state: state, peer: report.peer)
            return try sendNextBatch() + (try finishIfDone())
        case (.closing, .done):
            phase = .finished
            report.completedReconciliation = true
            return []
        default:
            throw SyncProtocolError("unexpected \(message.kindName) while \(phase)")
        }
    }

    private mutating func request(_ queries: [ViewQuery]) throws -> [SyncMessage] {
        report.viewRequests += 1
        var messages: [SyncMessage] = []
        for chunk in stride(from: 0, to: queries.count, by: limits.queriesPerRequest) {
            let part = Array(queries[chunk..<min(chunk + limits.queriesPerRequest, queries.count)])
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

    /// Revocations first (so records are judged against them), then the pull, then our records.
    private mutating func beginExchange() throws -> [SyncMessage] {
        phase = .exchanging
        let recordIDs = differing[.records] ?? []
        let revocationIDs = differing[.revocations] ?? []
        report.recordDifferences = recordIDs.count
        report.revocationDifferences = revocationIDs.count
        if !recordIDs.isEmpty { state.willExchange(records: recordIDs, with: report.peer) }
        let revocations = try state.revocations(for: revocationIDs)
        report.revocationsSent = revocations.count
        outgoing = limits.batches(try state.records(at: recordIDs))
        var messages: [SyncMessage] = []
        if !revocations.isEmpty { messages.append(.revocations(revocations)) }
        messages.append(.pull(records: recordIDs, revocations: revocationIDs))
        return messages + (try sendNextBatch())
    }

    private mutating func sendNextBatch() throws -> [SyncMessage] {
        guard !outgoing.isEmpty else { return [] }
        let batch = outgoing.removeFirst()
        report.recordsSent += batch.count
        awaitingResults = true
        return [.records(batch)]
    }

    private mutating func finishIfDone() throws -> [SyncMessage] {
        guard pullComplete, !awaitingResults, outgoing.isEmpty, phase == .exchanging else { return [] }
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
        case .hello: "hello"
        case .viewRequest: "view request"
        case .views: "views"
        case .records: "records"
        case .pulled: "pulled records"
        case .revocations: "revocations"
        case .pull: "pull"
        case .results: "results"
        case .done: "done"
        case .failure: "failure"
        }
    }
}
