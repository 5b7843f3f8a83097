/// The answering side of a session: serves summary views, applies what it is sent, and streams
/// what it is asked for one batch at a time — each answer bounded by `SyncLimits`, so one message
/// of the peer's costs a bounded amount of work, and a peer that goes away stops the work with its
/// next unanswered message. Messages in, messages out.
public struct SyncResponder: Sendable {
    public let state: any SyncLocalState
    public let limits: SyncLimits
    public private(set) var isFinished = false
    public private(set) var report = SyncReport()
    private var kind: SessionKind?
    private var pendingPull: ArraySlice<Hash256> = []
    /// Pulled batches sent and not yet answered. Two in flight let reading and sending the next
    /// batch overlap with the peer verifying the previous one, and still bound memory.
    private var pulledInFlight = 0
    private let pullWindow = 2
    private var pullOpen = false
    private var queries = 0
    private var refusalStreak = 0

    /// - Parameter peer: the peer's name, as its link identified it (for logs and reports).
    public init(state: any SyncLocalState, peer: String, limits: SyncLimits = .default) {
        self.state = state
        self.limits = limits
        report.peer = peer
    }

    public var sessionKind: SessionKind? { kind }

    public mutating func receive(_ message: SyncMessage) throws -> [SyncMessage] {
        guard !isFinished else { throw SyncProtocolError("message after the session ended") }
        guard let kind else {
            guard case .open(let opened, _) = message else { throw SyncProtocolError("a session starts with open, not \(message.kindName)") }
            self.kind = opened
            return opened == .full ? [.opened(try state.treeHash())] : []
        }
        switch (kind, message) {
        case (.push, .records(let records)):
            report.recordsReceived += records.count
            isFinished = true
            return [.results(try SyncSession.apply(records, arrival: .pushed, state: state, peer: report.peer, limits: limits, report: &report, streak: &refusalStreak))]
        case (.full, .viewRequest(let asked)):
            guard asked.count <= limits.queriesPerRequest else {
                throw SyncProtocolError("\(asked.count) view queries in one request (limit \(limits.queriesPerRequest))")
            }
            queries += asked.count
            guard queries <= limits.maxQueriesPerSession else { throw SyncProtocolError("more than \(limits.maxQueriesPerSession) view queries in one session") }
            report.viewRequests += 1
            var answers: [ViewAnswer] = []
            for query in asked {
                if query.entries {
                    let count = try state.entryCount(query.space, under: query.prefix)
                    guard count <= limits.maxEntriesView else {
                        throw SyncProtocolError("entries asked for a subtree of \(count) (limit \(limits.maxEntriesView)); walk the summary instead")
                    }
                }
                answers.append(ViewAnswer(query: query, view: try state.view(query)))
            }
            return [.views(answers)]
        case (.full, .records(let records)):
            report.recordsReceived += records.count
            return [.results(try SyncSession.apply(records, arrival: .handedOver, state: state, peer: report.peer, limits: limits, report: &report, streak: &refusalStreak))]
        case (.full, .revocations(let revocations)):
            try SyncSession.apply(revocations: revocations, state: state, peer: report.peer, limits: limits, report: &report, streak: &refusalStreak)
            return []
        case (.full, .pull(let recordIDs, let revocationIDs)):
            guard !pullOpen, pulledInFlight == 0 else { throw SyncProtocolError("pull while another is being answered") }
            guard recordIDs.count <= limits.pullChunk, revocationIDs.count <= limits.pullChunk else {
                throw SyncProtocolError("pull of \(recordIDs.count) records and \(revocationIDs.count) revocations (limit \(limits.pullChunk) each)")
            }
            var replies: [SyncMessage] = []
            for chunk in SyncLimits.chunks(SyncSession.unique(revocationIDs), of: limits.batchRevocations) {
                let revocations = try state.revocations(for: chunk)
                report.revocationsSent += revocations.count
                if !revocations.isEmpty { replies.append(.revocations(revocations)) }
            }
            pendingPull = SyncSession.unique(recordIDs)[...]
            pullOpen = true
            repeat {
                replies += try nextPulledBatch()
            } while pullOpen && pulledInFlight < pullWindow && !pendingPull.isEmpty
            return replies
        case (.full, .results(let results)):
            guard pulledInFlight > 0 else { throw SyncProtocolError("results for records that were not sent") }
            pulledInFlight -= 1
            try SyncSession.absorb(results, into: &report, state: state, peer: report.peer, limits: limits)
            return pendingPull.isEmpty ? [] : try nextPulledBatch()
        case (.full, .done(let theirs)):
            isFinished = true
            let mine = try state.treeHash()
            report.completedReconciliation = true
            report.equalAtEnd = theirs == mine
            return [.done(mine)]
        case (_, .failure(let text)):
            isFinished = true
            throw SyncProtocolError("peer \(report.peer) gave up: \(text)")
        default:
            throw SyncProtocolError("unexpected \(message.kindName) in a \(kind == .full ? "full session" : "push")")
        }
    }

    /// Reads and sends the next batch of pulled records; the rest waits for this batch's results.
    private mutating func nextPulledBatch() throws -> [SyncMessage] {
        let batch = try SyncSession.nextBatch(from: &pendingPull, state: state, limits: limits)
        report.recordsSent += batch.count
        let last = pendingPull.isEmpty
        if last { pullOpen = false }
        if batch.isEmpty { return [.pulled([], last: true)] }
        pulledInFlight += 1
        return [.pulled(batch, last: last)]
    }
}
