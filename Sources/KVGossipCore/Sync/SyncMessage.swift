/// The two summaries a sync reconciles.
public enum SummarySpace: UInt8, Sendable, CaseIterable {
    case records = 0
    case revocations = 1
}

/// What a session is for.
public enum SessionKind: UInt8, Sendable {
    /// Compare tree hashes and reconcile whatever differs (anti-entropy).
    case full = 0
    /// Hand fresh records to the peer, which answers with one result per record.
    case push = 1
}

/// Messages of sync sessions (Docs/contract.md §Anti-entropy), carried over an authenticated link
/// (`LinkHandshake`) which already says who the peer is. Binary; `Docs/protocol.md §Sessions` gives
/// the layout. Every message is bounded by `SyncLimits`.
public enum SyncMessage: Sendable, Equatable {
    /// The first message of a session: its kind and the opener's tree hash.
    case open(SessionKind, Hash256)
    /// The answer to `open(.full)`: the responder's tree hash.
    case opened(Hash256)
    /// "Show me your summary at these prefixes" (entries: the entry list even if internal; only
    /// for small subtrees).
    case viewRequest([ViewQuery])
    case views([ViewAnswer])
    /// Records (encodings) sent to the other side, which answers with `results`.
    case records([Record])
    /// One batch of the records a `pull` asked for (also answered with `results`); `last` marks
    /// the final batch of that pull, so memory per session stays one batch.
    case pulled([Record], last: Bool)
    case revocations([Revocation])
    /// "Send me what you hold at these positions."
    case pull(records: [Hash256], revocations: [Hash256])
    /// The outcome of each record of one `records` or `pulled` message, in order.
    case results([PushResult])
    /// The sender is finished; carries its tree hash after the session.
    case done(Hash256)
    /// The sender gives up on the session, with a reason for the other side's log.
    case failure(String)
    /// "My tree hash is now this": one-way, outside any session. A peer whose hash differs may
    /// open a full session.
    case announce(Hash256)
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
