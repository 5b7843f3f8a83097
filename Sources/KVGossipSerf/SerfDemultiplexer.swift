/// Turns the agent's stream of msgpack objects into frames addressed by Seq.
///
/// The agent writes a header, then a body only if the request's command has one
/// (Docs/serf-rpc.md §The body table), and streams/queries keep sending header+record pairs on their Seq.
/// Whether the next object is a body can only be known from what was asked on that Seq, so this table is kept
/// per Seq and an unknown Seq is a protocol violation (the framing is lost from there on).
/// `package`: the fuzz targets (Docs/security.md §Fuzzing) feed it bytes as the agent would.
package struct SerfDemultiplexer: Sendable {
    /// A complete unit delivered to whoever waits on `seq`.
    package enum Frame: Sendable, Equatable {
        /// The one reply of a plain command.
        case reply(seq: UInt64, error: String, body: MsgPackValue?)
        /// A stream/monitor/query was accepted (error empty) or refused (no records will follow).
        case accepted(seq: UInt64, error: String)
        /// One record of an accepted stream/query. `last` marks a query's `done`.
        case record(seq: UInt64, body: MsgPackValue, last: Bool)
    }

    private enum Expectation {
        case reply(SerfCommand)
        case acceptance(SerfCommand)
        case records(SerfCommand)
        /// A stopped stream: records may still be in flight and must be skipped whole.
        case retired
    }

    private enum Body {
        case reply(seq: UInt64, error: String)
        case record(seq: UInt64, command: SerfCommand)
        case discard
    }

    private var expectations: [UInt64: Expectation] = [:]
    private var nextIsBody: Body?

    /// Number of Seqs still awaiting something (retired streams included).
    package var outstanding: Int { expectations.count }

    package init() {}

    /// Registers a request before it is written, so its reply can never arrive unannounced.
    package mutating func expect(seq: UInt64, command: SerfCommand) {
        precondition(expectations[seq] == nil, "Seq \(seq) reused")
        expectations[seq] = command.producesRecords ? .acceptance(command) : .reply(command)
    }

    /// Marks a stream as stopped: later records on its Seq are read and dropped.
    package mutating func retire(seq: UInt64) {
        if expectations[seq] != nil { expectations[seq] = .retired }
    }

    /// Feeds one decoded object; returns a frame when one is complete.
    package mutating func receive(_ value: MsgPackValue) throws(SerfError) -> Frame? {
        if let body = nextIsBody {
            nextIsBody = nil
            switch body {
            case .reply(let seq, let error):
                return .reply(seq: seq, error: error, body: value)
            case .record(let seq, let command):
                let last = command == .query && value["Type"]?.stringValue == "done"
                if last { expectations[seq] = nil }
                return .record(seq: seq, body: value, last: last)
            case .discard:
                return nil
            }
        }
        let header = try SerfReplyHeader(decoding: value)
        let seq = header.seq
        switch expectations[seq] {
        case nil:
            throw .protocolViolation("reply for Seq \(seq), which has no request outstanding")
        case .reply(let command)?:
            expectations[seq] = nil
            guard command.replyCarriesBody(error: header.error) else {
                return .reply(seq: seq, error: header.error, body: nil)
            }
            nextIsBody = .reply(seq: seq, error: header.error)
            return nil
        case .acceptance(let command)?:
            expectations[seq] = header.error.isEmpty ? .records(command) : nil
            return .accepted(seq: seq, error: header.error)
        case .records(let command)?:
            nextIsBody = .record(seq: seq, command: command)
            return nil
        case .retired?:
            nextIsBody = .discard
            return nil
        }
    }
}
