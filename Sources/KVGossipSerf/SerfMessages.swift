// The framing of Serf's RPC: request header (+ body) and reply header. Keys here and in the other
// Serf* message files are Go field names and case-sensitive: a misspelt key is silently ignored by
// the agent (Docs/serf-rpc.md §Key spelling), so each key is spelt in one place only.

/// Encodes one request: the header `{Command, Seq}`, then the body if the command takes one.
enum SerfRequest {
    static func encode(_ command: SerfCommand, seq: UInt64, body: MsgPackValue?) -> [UInt8] {
        // Both header keys, always: the agent reuses the previous header's fields for missing ones.
        var bytes = MsgPackEncoder.encode(["Command": .string(command.rawValue), "Seq": .uint(seq)])
        if let body { MsgPackEncoder.encode(body, into: &bytes) }
        return bytes
    }
}

/// The header in front of every reply and record.
public struct SerfReplyHeader: Sendable, Equatable {
    /// The request this reply or record belongs to.
    public var seq: UInt64
    /// Empty on success.
    public var error: String

    public init(seq: UInt64, error: String) {
        self.seq = seq
        self.error = error
    }

    /// Accepts the keys in any order (Go sorts them, but nothing promises that).
    init(decoding value: MsgPackValue) throws(SerfError) {
        guard case .map = value, let seq = value["Seq"]?.uint64Value else {
            throw .protocolViolation("expected a reply header {Seq, Error}, got \(value.description.prefix(120))")
        }
        switch value["Error"] {
        case nil, .null?: error = ""
        case .string(let text)?: error = text
        default: throw .protocolViolation("reply header Error is not a string")
        }
        self.seq = seq
    }
}

extension Duration {
    /// Whole nanoseconds (saturating), as Go's `time.Duration`; nil when negative.
    var wholeNanoseconds: Int64? {
        let (seconds, attoseconds) = components
        guard seconds >= 0, attoseconds >= 0 else { return nil }
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? Int64.max : scaled.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue
    }
}
