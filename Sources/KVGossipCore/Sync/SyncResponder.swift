/// The answering side of a sync session: serves summary views, applies what it is sent, and
/// streams what it is asked for one batch at a time. Messages in, messages out.
public struct SyncResponder: Sendable {
    public let state: any SyncLocalState
    public let localName: String
    public let syncPort: UInt16
    public let limits: SyncLimits
    public private(set) var peer = "?"
    public private(set) var isFinished = false
    public private(set) var report = SyncReport()
    private var greeted = false
    private var pendingPull: ArraySlice<Hash256> = []
    /// Pulled batches sent and not yet answered. Two in flight let reading and sending the next
    /// batch overlap with the peer verifying the previous one, and still bound memory.
    private var pulledInFlight = 0
    private let pullWindow = 2
    private var sawPull = false

    public init(state: any SyncLocalState, localName: String, syncPort: UInt16, limits: SyncLimits = .default) {
        self.state = state
        self.localName = localName
        self.syncPort = syncPort
        self.limits = limits
    }

    public mutating func receive(_ message: SyncMessage) throws -> [SyncMessage] {
        guard !isFinished else { throw SyncProtocolError("message after the session ended") }
        if case .hello(let hello) = message {
            guard !greeted else { throw SyncProtocolError("second hello") }
            greeted = true
            peer = hello.nodeName
            report.peer = hello.nodeName
            if let problem = SyncSession.incompatibility(hello, cluster: state.cluster) {
                isFinished = true
                return [.failure(problem)]
            }
            state.greeted(by: hello)
            return [.hello(SyncHello(cluster: state.cluster, treeHash: try state.treeHash(), nodeName: localName, syncPort: syncPort))]
        }
        guard greeted else { throw SyncProtocolError("expected hello first") }
        switch message {
        case .viewRequest(let queries):
            guard queries.count <= limits.queriesPerRequest else { throw SyncProtocolError("too many view queries (\(queries.count))") }
            report.viewRequests += 1
            return [.views(try queries.map { ViewAnswer(query: $0, view: try state.view($0)) })]
        case .records(let records):
            report.recordsReceived += records.count
            return [.results(try state.apply(records: records, from: peer))]
        case .revocations(let revocations):
            report.revocationsReceived += revocations.count
            try state.apply(revocations: revocations, from: peer)
            return []
        case .pull(let recordIDs, let revocationIDs):
            sawPull = true
            guard pulledInFlight == 0, pendingPull.isEmpty else { throw SyncProtocolError("pull while another is being answered") }
            let revocations = try state.revocations(for: revocationIDs)
            report.revocationsSent += revocations.count
            pendingPull = recordIDs[...]
            var replies: [SyncMessage] = [.revocations(revocations)]
            repeat {
                replies += try nextPulledBatch()
            } while pulledInFlight < pullWindow && !pendingPull.isEmpty
            return replies
        case .results(let results):
            guard pulledInFlight > 0 else { throw SyncProtocolError("results for records that were not sent") }
            pulledInFlight -= 1
            try SyncSession.absorb(results, into: &report, state: state, peer: peer)
            return pendingPull.isEmpty ? [] : try nextPulledBatch()
        case .done:
            isFinished = true
            // Equal hashes (nothing but hello and done) or a pull: a reconciliation, not a push.
            report.completedReconciliation = sawPull || report.recordsReceived == 0
            return [.done(try state.treeHash())]
        case .failure(let text):
            isFinished = true
            throw SyncProtocolError("peer \(peer) gave up: \(text)")
        case .hello, .views, .pulled:
            throw SyncProtocolError("unexpected message from the initiating side")
        }
    }

    /// Reads and sends the next batch of pulled records; the rest waits for this batch's results.
    private mutating func nextPulledBatch() throws -> [SyncMessage] {
        var batch: [Record] = []
        var bytes = 0
        fill: while !pendingPull.isEmpty {
            let chunk = Array(pendingPull.prefix(limits.batchRecords - batch.count))
            let found = Dictionary(try state.records(at: chunk).map { (SummaryEntries.keyHash($0.key), $0) }, uniquingKeysWith: { a, _ in a })
            for id in chunk {
                if let record = found[id] {
                    let size = record.encoded.count
                    if !batch.isEmpty, bytes + size > limits.batchBytes { break fill }
                    batch.append(record)
                    bytes += size
                }
                pendingPull = pendingPull.dropFirst()
            }
            if batch.count >= limits.batchRecords { break }
        }
        report.recordsSent += batch.count
        let last = pendingPull.isEmpty
        if batch.isEmpty { return [.pulled([], last: true)] }
        pulledInFlight += 1
        return [.pulled(batch, last: last)]
    }
}

/// Rules both sides share.
enum SyncSession {
    static func incompatibility(_ hello: SyncHello, cluster: PublicKey) -> String? {
        if hello.version != SyncHello.version {
            return "sync protocol version \(hello.version) is not supported (this node speaks \(SyncHello.version))"
        }
        if hello.cluster != cluster {
            return "different cluster: peer root \(hello.cluster.fingerprint), this node's root \(cluster.fingerprint)"
        }
        return nil
    }

    /// Counts the peer's answers to what we sent and applies any revocations it carried
    /// (Docs/contract.md §Revocation).
    static func absorb(_ results: [PushResult], into report: inout SyncReport, state: any SyncLocalState, peer: String) throws {
        var revocations: [Revocation] = []
        for r in results where r.code == .refused {
            report.refusedByPeer[r.reason ?? .malformed, default: 0] += 1
            revocations.append(contentsOf: r.revocations)
        }
        if !revocations.isEmpty { try state.apply(revocations: revocations, from: peer) }
    }
}
