/// A push (Docs/contract.md §Anti-entropy): fresh records handed to a peer, which answers with one
/// result per record and forwards only what was new to it. Two messages out, one in.
public struct SyncPusher: Sendable {
    public let state: any SyncLocalState
    public let records: [Record]
    public let limits: SyncLimits
    public private(set) var results: [PushResult] = []
    public private(set) var report = SyncReport()
    public private(set) var isFinished = false

    /// - Parameter records: at most one batch (`SyncLimits.batchRecords`).
    public init(state: any SyncLocalState, peer: String, records: [Record], limits: SyncLimits = .default) {
        precondition(records.count <= limits.batchRecords, "a push carries one batch")
        self.state = state
        self.records = records
        self.limits = limits
        report.peer = peer
    }

    public mutating func start() throws -> [SyncMessage] {
        report.recordsSent = records.count
        return [.open(.push, try state.treeHash()), .records(records)]
    }

    public mutating func receive(_ message: SyncMessage) throws -> [SyncMessage] {
        guard !isFinished else { throw SyncProtocolError("message after the push ended") }
        isFinished = true
        switch message {
        case .failure(let text):
            throw SyncProtocolError("peer \(report.peer) refused the push: \(text)")
        case .results(let results):
            guard results.count == records.count else { throw SyncProtocolError("\(results.count) results for \(records.count) records") }
            self.results = results
            try SyncSession.absorb(results, into: &report, state: state, peer: report.peer, limits: limits)
            return []
        default:
            throw SyncProtocolError("unexpected \(message.kindName) during a push")
        }
    }
}
