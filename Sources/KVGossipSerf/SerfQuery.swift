/// What `query` sends. Field names and types follow the agent's Go struct: `Timeout` is a
/// `time.Duration`, i.e. integer nanoseconds (a float breaks the connection).
public struct SerfQueryRequest: Sendable, Equatable {
    /// The query name peers filter their streams on (`query:NAME`).
    public var name: String
    /// Keep within `SerfLimits.queryPayloadBudget`: the agent's limit counts the whole encoded message.
    public var payload: [UInt8]
    /// nil lets the agent pick (GossipInterval × 16 × ceil(log10(N+1)): 1.6–3.2 s on small clusters).
    public var timeout: Duration?
    /// Only these nodes answer (exact names).
    public var filterNodes: [String]
    /// Only nodes whose tags match these anchored regexes answer.
    public var filterTags: [String: String]
    /// Ask for an `ack` from every node that received the query.
    public var requestAck: Bool
    /// Extra nodes that relay each response (the agent deduplicates them).
    public var relayFactor: UInt8

    public init(
        name: String, payload: [UInt8], timeout: Duration? = nil, filterNodes: [String] = [],
        filterTags: [String: String] = [:], requestAck: Bool = false, relayFactor: UInt8 = 0
    ) {
        self.name = name
        self.payload = payload
        self.timeout = timeout
        self.filterNodes = filterNodes
        self.filterTags = filterTags
        self.requestAck = requestAck
        self.relayFactor = relayFactor
    }

    /// The timeout in nanoseconds, 0 for the agent's default; nil when it is negative (the agent
    /// then emits spurious empty records, Docs/serf-rpc.md §Query records).
    var timeoutNanoseconds: Int64? {
        guard let timeout else { return 0 }
        return timeout.wholeNanoseconds
    }

    var body: MsgPackValue {
        [
            "FilterNodes": .array(filterNodes.map { .string($0) }),
            "FilterTags": .map(filterTags.sorted { $0.key < $1.key }.map { (.string($0.key), .string($0.value)) }),
            "RequestAck": .bool(requestAck),
            "RelayFactor": .uint(UInt64(relayFactor)),
            "Timeout": .int(timeoutNanoseconds ?? 0),
            "Name": .string(name),
            "Payload": .binary(payload),
        ]
    }
}

/// One record on a query's Seq.
public enum SerfQueryEvent: Sendable, Equatable {
    /// `from` received the query (only with `requestAck`).
    case ack(from: String)
    /// `from` answered.
    case response(from: String, payload: [UInt8])
    /// The deadline passed; nothing more will come.
    case done

    /// Decodes a record; nil for the spurious empty-`From` acks/responses the agent can emit at the
    /// deadline (hashicorp/serf#408), which carry nothing.
    package static func decode(record: MsgPackValue) throws(SerfError) -> SerfQueryEvent? {
        let f = try SerfFields(record, "query record")
        let type = try f.string("Type")
        if type == "done" { return .done }
        let from = try f.string("From")
        switch type {
        case "ack": return from.isEmpty ? nil : .ack(from: from)
        case "response": return from.isEmpty ? nil : .response(from: from, payload: try f.bytes("Payload"))
        default: throw .malformedReply("query record of unknown type \(type)")
        }
    }
}
