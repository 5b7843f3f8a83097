/// How records from a peer reached this node, which decides whether they go on to its peers.
public enum RecordArrival: Sendable, Equatable {
    /// A push: the sender may have pushed them to every peer already.
    case pushed
    /// The initiator's own records in a full session, sent unasked: this node alone got them.
    case handedOver
    /// Fetched by this node in a full session (anti-entropy spreads them, not forwarding).
    case pulled
}

/// What a sync session needs from the node it runs on. The store implements it in the shell; tests
/// implement it in memory. Calls may do I/O, so they throw; the session logic itself does none.
public protocol SyncLocalState: Sendable {
    var cluster: PublicKey { get }
    func treeHash() throws -> Hash256
    /// The summary at a prefix: its node view, or (for `entries`) its entries whatever its shape.
    func view(_ query: ViewQuery) throws -> MerkleNodeView
    /// How many entries lie at or below a prefix (cheap: internal nodes keep counts), so a request
    /// for a subtree's entries can be refused before it is read.
    func entryCount(_ space: SummarySpace, under prefix: NibblePath) throws -> Int
    /// The records stored at these positions (key hashes), in order, absent ones skipped, up to
    /// `maxBytes` of encodings (with `firstAnySize`, the first found is taken whatever its size):
    /// reading stops before the first that does not fit, which is not loaded. `consumed`: how many
    /// of `ids` were read (taken or found absent).
    func records(at ids: [Hash256], maxBytes: Int, firstAnySize: Bool) throws -> (records: [Record], consumed: Int)
    /// The revocations of these grant ids; absent ones are skipped.
    func revocations(for grantIDs: [Hash256]) throws -> [Revocation]
    /// The digest of the record stored under each key, nil where there is none, in order.
    func storedDigests(of keys: [Key]) throws -> [Hash256?]
    /// Verifies and applies records from the peer, one result per record, in order. `arrival`
    /// says how they came, for whoever decides whether to forward them.
    func apply(records: [Record], from peer: String, arrival: RecordArrival) throws -> [PushResult]
    /// Verifies and applies one batch of revocations from the peer in one transaction (invalid ones
    /// are refused, counted and logged). Returns how many were refused.
    @discardableResult
    func apply(revocations: [Revocation], from peer: String) throws -> Int
    /// The walk found these positions differ: their keys may be about to change (pending-fetch).
    func willExchange(records ids: [Hash256], with peer: String)
    /// The exchange for these positions is over (fetched, refused or found not newer).
    func didExchange(records ids: [Hash256], with peer: String)
}

extension SyncLocalState {
    public func willExchange(records ids: [Hash256], with peer: String) {}
    public func didExchange(records ids: [Hash256], with peer: String) {}
}

/// Bounds of one session, so a peer can make it hold, read or send only so much
/// (Docs/protocol.md §Sessions). Both sides enforce them on what they receive.
public struct SyncLimits: Sendable, Equatable {
    /// Records per `records`/`pulled` message, and their total encoded size.
    public var batchRecords = 256
    public var batchBytes = 2 << 20
    /// Revocations per `revocations` message (each batch is applied in one transaction).
    public var batchRevocations = 256
    /// View queries per request: a reply is at most this many views.
    public var queriesPerRequest = 256
    /// A query for a subtree's entries is answered only when the subtree holds at most this many
    /// (a leaf holds at most 16); otherwise the session ends. The initiator never needs more.
    public var maxEntriesView = 64
    /// Positions per `pull` (of each kind).
    public var pullChunk = 4096
    /// View queries over a whole session (a walk over a million differences stays well within).
    public var maxQueriesPerSession = 1 << 22
    /// Refused records in a row after which the session is ended: a peer sending that many bad
    /// records is not worth the signature checks.
    public var maxRefusalStreak = 64

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

    /// Splits anything into chunks of at most `size`.
    public static func chunks<T>(_ items: [T], of size: Int) -> [[T]] {
        stride(from: 0, to: items.count, by: max(1, size)).map { Array(items[$0..<min($0 + max(1, size), items.count)]) }
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
    public var refusedHere = 0
    public var viewRequests = 0
    public var alreadyEqual = false
    /// A full reconciliation (not a push) ran to its end: each side sent what the other lacked.
    public var completedReconciliation = false
    /// Both sides' tree hashes, as their `done` messages said, were equal at the end.
    public var equalAtEnd = false

    public init() {}
}

public struct SyncProtocolError: Error, Sendable, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Rules both sides share.
enum SyncSession {
    /// The next batch of the records at `pending` positions (at most `batchRecords` and
    /// `batchBytes`, or one record larger than that), read without loading a record the batch
    /// cannot hold: the positions read go from `pending`, absent ones too. Empty once `pending` is.
    /// Reading a whole chunk of positions at once held every record of it in memory, which a peer
    /// could make large: a pull of one big record's position, 4,096 times over, or views of an
    /// empty tree that make an initiator read its whole store.
    static func nextBatch(from pending: inout ArraySlice<Hash256>, state: any SyncLocalState, limits: SyncLimits) throws -> [Record] {
        var batch: [Record] = []
        var bytes = 0
        while !pending.isEmpty, batch.count < limits.batchRecords {
            let ids = Array(pending.prefix(limits.batchRecords - batch.count))
            let (found, consumed) = try state.records(at: ids, maxBytes: limits.batchBytes - bytes, firstAnySize: batch.isEmpty)
            pending = pending.dropFirst(consumed)
            batch += found
            bytes += found.reduce(0) { $0 + $1.encoded.count }
            if consumed < ids.count { break }  // the next record does not fit
        }
        return batch
    }

    /// Positions in their first order, each once: a peer's repeats would each be read and sent.
    static func unique(_ ids: [Hash256]) -> [Hash256] {
        var seen = Set<Hash256>()
        return ids.filter { seen.insert($0).inserted }
    }

    /// Counts the peer's answers to what we sent and applies any revocations they carried
    /// (Docs/contract.md §Revocation), in batches.
    static func absorb(
        _ results: [PushResult], into report: inout SyncReport, state: any SyncLocalState, peer: String, limits: SyncLimits
    ) throws {
        var revocations: [Revocation] = []
        for r in results where r.code == .refused {
            report.refusedByPeer[r.reason ?? .malformed, default: 0] += 1
            revocations.append(contentsOf: r.revocations)
        }
        for batch in SyncLimits.chunks(revocations, of: limits.batchRevocations) {
            try state.apply(revocations: batch, from: peer)
        }
    }

    /// Applies a batch of revocations the peer sent; refused ones count toward the refusal streak
    /// like refused records, so a peer cannot keep a session busy verifying junk.
    static func apply(
        revocations: [Revocation], state: any SyncLocalState, peer: String, limits: SyncLimits, report: inout SyncReport, streak: inout Int
    ) throws {
        guard revocations.count <= limits.batchRevocations else {
            throw SyncProtocolError("\(revocations.count) revocations in one message (limit \(limits.batchRevocations))")
        }
        report.revocationsReceived += revocations.count
        let refused = try state.apply(revocations: revocations, from: peer)
        report.refusedHere += refused
        streak = refused == revocations.count ? streak + refused : 0
        if streak > limits.maxRefusalStreak {
            throw SyncProtocolError("\(streak) objects refused in a row; ending the session")
        }
    }

    /// Applies records from the peer and watches the refusal streak.
    static func apply(
        _ records: [Record], arrival: RecordArrival, state: any SyncLocalState, peer: String, limits: SyncLimits,
        report: inout SyncReport, streak: inout Int
    ) throws -> [PushResult] {
        guard records.count <= limits.batchRecords else {
            throw SyncProtocolError("\(records.count) records in one message (limit \(limits.batchRecords))")
        }
        // A record sent unasked that this node already holds (the digest stored under its key) is a
        // duplicate: answered so from a lookup, without its signature and authority checks or a
        // write (they were done when it was stored; a revocation since would have unset it).
        // Pulled records were found missing here, so they are not looked up.
        let stored: [Hash256?] = arrival == .pulled ? Array(repeating: nil, count: records.count) : try state.storedDigests(of: records.map(\.key))
        let held = zip(records, stored).map { $0.digest == $1 }
        let fresh = zip(records, held).filter { !$0.1 }.map(\.0)
        let applied = fresh.isEmpty ? [] : try state.apply(records: fresh, from: peer, arrival: arrival)
        guard stored.count == records.count, applied.count == fresh.count else {
            throw SyncProtocolError("the node answered for other records than it was given")
        }
        var next = applied.makeIterator()
        let results = held.map { $0 ? PushResult(code: .duplicate) : next.next()! }
        for r in results {
            if r.code == .refused {
                streak += 1
                report.refusedHere += 1
            } else {
                streak = 0
            }
        }
        if streak > limits.maxRefusalStreak {
            throw SyncProtocolError("\(streak) records refused in a row; ending the session")
        }
        return results
    }
}
