/// What a sync session needs from the node it runs on. The store implements it in the shell; tests
/// implement it in memory. Calls may do I/O, so they throw; the session logic itself does none.
public protocol SyncLocalState: Sendable {
    var cluster: PublicKey { get }
    func treeHash() throws -> Hash256
    /// The summary at a prefix: its node view, or (for `entries`) its entries whatever its shape.
    func view(_ query: ViewQuery) throws -> MerkleNodeView
    /// The records stored at these positions (key hashes); absent ones are skipped.
    func records(at ids: [Hash256]) throws -> [Record]
    /// The revocations of these grant ids; absent ones are skipped.
    func revocations(for grantIDs: [Hash256]) throws -> [Revocation]
    /// Verifies and applies records from the peer, one result per record, in order.
    func apply(records: [Record], from peer: String) throws -> [PushResult]
    /// Verifies and applies revocations from the peer (invalid ones are ignored and logged).
    func apply(revocations: [Revocation], from peer: String) throws
    /// The walk found these positions differ: their keys may be about to change (pending-fetch).
    func willExchange(records ids: [Hash256], with peer: String)
    /// The exchange for these positions is over (fetched, refused or found not newer).
    func didExchange(records ids: [Hash256], with peer: String)
    /// A compatible peer introduced itself (the answering side): who it is and where it syncs.
    func greeted(by hello: SyncHello)
}

extension SyncLocalState {
    public func willExchange(records ids: [Hash256], with peer: String) {}
    public func didExchange(records ids: [Hash256], with peer: String) {}
    public func greeted(by hello: SyncHello) {}
}

/// Limits of one session, so a peer cannot make it hold or send unbounded amounts.
public struct SyncLimits: Sendable, Equatable {
    /// Records per `records`/`pulled` message, and their total encoded size.
    public var batchRecords = 256
    public var batchBytes = 2 << 20
    /// View queries per request.
    public var queriesPerRequest = 4096
    /// Entries in one leaf view (a leaf holds at most 16; an entries view at most 16 + d).
    public var maxViewEntries = 1 << 16

    public init() {}
    public static let `default` = SyncLimits()

    /// Splits records into batches within the count and byte limits (every batch has ≥ 1 record).
    public func batches(_ records: [Record]) -> [[Record]] {
        var out: [[Record]] = []
        var current: [Record] = []
        var bytes = 0
        for r in records {
            let size = r.encoded.count
            if !current.isEmpty, current.count >= batchRecords || bytes + size > batchBytes {
                out.append(current)
                current = []
                bytes = 0
            }
            current.append(r)
            bytes += size
        }
        if !current.isEmpty { out.append(current) }
        return out
    }
}

/// What a session did, for logs, status and benchmarks.
public struct SyncReport: Sendable, Equatable {
    public var peer = ""
    public var recordDifferences = 0
    public var revocationDifferences = 0
    public var recordsSent = 0
    public var recordsReceived = 0
    public var revocationsSent = 0
    public var revocationsReceived = 0
    public var refusedByPeer: [RefusalReason: Int] = [:]
    public var viewRequests = 0
    public var alreadyEqual = false
    /// A full reconciliation (not a push) ran to its end: both trees agree as of its start.
    public var completedReconciliation = false

    public init() {}
}

public struct SyncProtocolError: Error, Sendable, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
