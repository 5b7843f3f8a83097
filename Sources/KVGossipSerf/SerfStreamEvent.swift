/// Comma lists of `stream` filters.
public enum SerfEventFilter {
    /// All five member events.
    public static let memberEvents = "member-join,member-leave,member-failed,member-update,member-reap"
    /// Queries of one name. Use the name: internal `_serf_*` queries are never delivered anyway,
    /// but other applications' queries would be.
    public static func queries(named name: String) -> String { "query:\(name)" }
    /// Several filters on one stream.
    public static func combine(_ filters: String...) -> String { filters.joined(separator: ",") }
}

/// The kinds of member event.
public enum SerfMemberEventKind: String, Sendable, CaseIterable {
    case join = "member-join"
    case leave = "member-leave"
    case failed = "member-failed"
    case update = "member-update"
    case reap = "member-reap"
}

/// A batch of member changes. The agent coalesces them (about 1 s late) and, in this build,
/// repeats `member-update` for any node once updated; apply them idempotently.
public struct SerfMemberEvent: Sendable, Equatable {
    public var kind: SerfMemberEventKind
    /// The members concerned, each in its new state.
    public var members: [SerfMember]

    public init(kind: SerfMemberEventKind, members: [SerfMember]) {
        self.kind = kind
        self.members = members
    }
}

/// A user event (`event` command).
public struct SerfUserEvent: Sendable, Equatable {
    public var name: String
    public var payload: [UInt8]
    /// Serf's Lamport clock for user events (deduplication is Serf's).
    public var lamportTime: UInt64
    /// Whether the sender let the agent coalesce it (delivered about 1.2 s late).
    public var coalesce: Bool
}

/// A query delivered to this connection's stream. Answer it with `respond(_:)`: the ID only means
/// something on the connection that received it, which is why the query keeps that connection.
public struct SerfIncomingQuery: Sendable, Equatable {
    /// Per-connection counter, not global.
    public var id: UInt64
    public var name: String
    public var payload: [UInt8]
    public var lamportTime: UInt64
    /// The connection that received the query; nil when decoded outside a client.
    var responder: SerfRPCClient?

    public init(id: UInt64, name: String, payload: [UInt8], lamportTime: UInt64) {
        self.id = id
        self.name = name
        self.payload = payload
        self.lamportTime = lamportTime
    }

    /// Sends this node's one answer. The agent refuses a second one and any after the deadline.
    public func respond(_ payload: [UInt8]) async throws {
        guard let responder else { throw SerfError.notConnected }
        try await responder.respond(id: id, payload: payload)
    }

    public static func == (a: SerfIncomingQuery, b: SerfIncomingQuery) -> Bool {
        a.id == b.id && a.name == b.name && a.payload == b.payload && a.lamportTime == b.lamportTime
    }
}

/// One record of a `stream`.
public enum SerfStreamEvent: Sendable, Equatable {
    case member(SerfMemberEvent)
    case user(SerfUserEvent)
    case query(SerfIncomingQuery)

    package static func decode(record: MsgPackValue) throws(SerfError) -> SerfStreamEvent {
        let f = try SerfFields(record, "stream record")
        let event = try f.string("Event")
        if let kind = SerfMemberEventKind(rawValue: event) {
            var members: [SerfMember] = []
            for item in try f.array("Members") { members.append(try SerfMember(decoding: item)) }
            return .member(SerfMemberEvent(kind: kind, members: members))
        }
        switch event {
        case "user":
            return .user(
                SerfUserEvent(
                    name: try f.string("Name"), payload: try f.bytes("Payload"),
                    lamportTime: try f.integer("LTime"), coalesce: try f.bool("Coalesce", default: false)))
        case "query":
            return .query(
                SerfIncomingQuery(
                    id: try f.integer("ID"), name: try f.string("Name"), payload: try f.bytes("Payload"),
                    lamportTime: try f.integer("LTime")))
        default:
            throw .malformedReply("stream record of unknown event \(event)")
        }
    }
}
