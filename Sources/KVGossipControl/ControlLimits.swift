/// What the control API lets one client cost the agent (Docs/operations.md §Control API limits).
/// Every answer is cut into bounded frames, every watch has a bounded backlog, and connections and
/// watches are counted, so no client can make the agent's memory grow with the tree or with time.
public struct ControlLimits: Sendable, Equatable {
    /// Records in one `list` answer or one page of a watch's initial records.
    public var pageRecords = 1_000
    /// About this many bytes of JSON per page; a page always holds at least one record, so a
    /// single large record still travels (alone).
    public var pageBytes = 1 << 20
    /// Store rows one page may examine. A pattern that matches few keys answers a short (even
    /// empty) page with a cursor rather than scanning the whole tree in one request.
    public var scanRows = 10_000
    /// Connections served at once on each transport (the Unix socket, the TCP listener).
    public var connections = 256
    /// TCP connections served at once from one source address.
    public var connectionsPerAddress = 16
    /// Watches open at once on one connection. The client library opens one per followed key.
    public var watchesPerConnection = 10_000
    /// Watches open at once on each transport.
    public var watches = 20_000
    /// Changes waiting to be sent for one watch; one more and the watch falls behind.
    public var watchBacklog = 4_096
    /// Changes waiting to be sent for all the watches of one connection together.
    public var connectionBacklog = 16_384
    /// Seconds a request frame may take from its first byte to its last; a connection that stalls
    /// inside a frame longer than this is closed.
    public var frameSeconds = 10.0

    public init() {}

    public static let `default` = ControlLimits()
}
