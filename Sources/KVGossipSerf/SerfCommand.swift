/// The RPC commands of Serf 0.9.4 (IPC version 1) and what follows each reply header.
///
/// Nothing on the wire says whether a body follows a reply header, so this table is the only way to
/// stay in step with the stream: reading a body that is not there (or missing one that is) would
/// misparse every following object. Measured against the agent: `Docs/serf-rpc.md §The body table`.
public enum SerfCommand: String, Sendable, CaseIterable {
    case handshake
    case auth
    case members
    case membersFiltered = "members-filtered"
    case event
    case join
    case forceLeave = "force-leave"
    case leave
    case tags
    case stream
    case monitor
    case stop
    case query
    case respond
    case stats
    case getCoordinate = "get-coordinate"
    case listKeys = "list-keys"
    case installKey = "install-key"
    case useKey = "use-key"
    case removeKey = "remove-key"

    /// Whether the reply header is followed by a body (when the command was dispatched at all).
    public var replyHasBody: Bool {
        switch self {
        case .members, .membersFiltered, .join, .stats, .getCoordinate,
            .listKeys, .installKey, .useKey, .removeKey:
            true
        case .handshake, .auth, .event, .forceLeave, .leave, .tags, .stream, .monitor, .stop, .query, .respond:
            false
        }
    }

    /// Commands whose accepted reply is followed by records (header + body each) on the same Seq.
    public var producesRecords: Bool {
        switch self {
        case .stream, .monitor, .query: true
        default: false
        }
    }

    /// Errors the agent raises before dispatching a command. They come header-only, even for a
    /// command that normally has a body (join, members, keys… send their body even on their own errors).
    public static let preDispatchErrors: Set<String> = [
        "Handshake required", "Authentication required", "Unsupported command",
    ]

    /// Whether a reply header with `error` is followed by a body.
    public func replyCarriesBody(error: String) -> Bool {
        replyHasBody && !Self.preDispatchErrors.contains(error)
    }
}
