/// The two summaries a sync reconciles.
public enum SummarySpace: UInt8, Sendable, CaseIterable {
    case records = 0
    case revocations = 1
}

/// Messages of a sync session (Docs/contract.md §Anti-entropy). Binary, framed by the transport;
/// `Docs/protocol.md` gives the layout.
public enum SyncMessage: Sendable, Equatable {
    /// First message in each direction.
    case hello(SyncHello)
    /// "Show me your summary at these prefixes" (entries: the entry list even if internal).
    case viewRequest([ViewQuery])
    case views([ViewAnswer])
    /// Records (encodings) sent to the other side, which answers with `results`.
    case records([Record])
    /// One batch of the records a `pull` asked for (also answered with `results`); `last` marks
    /// the final batch, so memory per session stays one batch.
    case pulled([Record], last: Bool)
    case revocations([Revocation])
    /// "Send me what you hold at these positions."
    case pull(records: [Hash256], revocations: [Hash256])
    /// The outcome of each record of one `records` message, in order.
    case results([PushResult])
    /// The sender is finished; carries its tree hash after the session.
    case done(Hash256)
    /// The sender gives up on the session, with a reason for the other side's log.
    case failure(String)
}

public struct SyncHello: Sendable, Equatable {
    public static let version: UInt8 = 1
    public var version: UInt8 = SyncHello.version
    public var cluster: PublicKey
    public var treeHash: Hash256
    public var nodeName: String
    public var syncPort: UInt16

    public init(cluster: PublicKey, treeHash: Hash256, nodeName: String, syncPort: UInt16) {
        self.cluster = cluster
        self.treeHash = treeHash
        self.nodeName = nodeName
        self.syncPort = syncPort
    }
}

public struct ViewQuery: Sendable, Equatable, Hashable {
    public var space: SummarySpace
    public var prefix: NibblePath
    public var entries: Bool

    public init(space: SummarySpace, prefix: NibblePath, entries: Bool) {
        self.space = space
        self.prefix = prefix
        self.entries = entries
    }
}

public struct ViewAnswer: Sendable, Equatable {
    public var query: ViewQuery
    public var view: MerkleNodeView

    public init(query: ViewQuery, view: MerkleNodeView) {
        self.query = query
        self.view = view
    }
}

/// What the receiver did with one pushed record.
public struct PushResult: Sendable, Equatable {
    public enum Code: UInt8, Sendable {
        case accepted = 0
        case duplicate = 1
        case superseded = 2
        case refused = 3
    }

    public var code: Code
    public var reason: RefusalReason?
    public var detail: String
    /// For `revoked`: the revocations that refused it, which the sender applies
    /// (Docs/contract.md §Revocation).
    public var revocations: [Revocation]

    public init(code: Code, reason: RefusalReason? = nil, detail: String = "", revocations: [Revocation] = []) {
        self.code = code
        self.reason = reason
        self.detail = detail
        self.revocations = revocations
    }
}
