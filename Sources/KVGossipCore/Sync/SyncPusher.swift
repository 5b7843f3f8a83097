/// A one-shot session that hands fresh records to a peer (the push of Docs/contract.md §Anti-entropy):
/// hello, the records, their results, done. The peer forwards only what was new to it.
public struct SyncPusher: Sendable {
    enum Phase: Sendable { case hello, results, closing, finished }

    public let state: any SyncLocalState
    public let localName: String
    public let syncPort: UInt16
    public let records: [Record]
    public private(set) var results: [PushResult] = []
    public private(set) var report = SyncReport()
    private var phase = Phase.hello

    public init(state: any SyncLocalState, localName: String, syncPort: UInt16, records: [Record]) {
        self.state = state
        self.localName = localName
        self.syncPort = syncPort
        self.records = records
    }

    public var isFinished: Bool { phase == .finished }

    public mutating func start() throws -> [SyncMessage] {
        report.recordsSent = records.count
        return [
            .hello(SyncHello(cluster: state.cluster, treeHash: try state.treeHash(), nodeName: localName, syncPort: syncPort)),
            .records(records),
        ]
    }

    public mutating func receive(_ message: SyncMessage) throws -> [SyncMessage] {
        switch (phase, message) {
        case (_, .failure(let text)):
            phase = .finished
            throw SyncProtocolError("peer \(report.peer) refused the push: \(text)")
        case (.hello, .hello(let hello)):
            report.peer = hello.nodeName
            if let problem = SyncSession.incompatibility(hello, cluster: state.cluster) {
                phase = .finished
                return [.failure(problem)]
            }
            phase = .results
            return []
        case (.results, .results(let results)):
            guard results.count == records.count else { throw SyncProtocolError("\(results.count) results for \(records.count) records") }
            self.results = results
            try SyncSession.absorb(results, into: &report, state: state, peer: report.peer)
            phase = .closing
            return [.done(try state.treeHash())]
        case (.closing, .done):
            phase = .finished
            return []
        default:
            throw SyncProtocolError("unexpected \(message.kindName) during a push")
        }
    }
}
