import KVGossipCore
import KVGossipSerf

/// What the Serf agent sends over RPC (Docs/serf-rpc.md): msgpack values with no length prefix, split
/// into replies and records by Seq, then read as members, stream events and query records. Decoded
/// with the limits `SerfRPCClient.connect` uses by default.
enum SerfTargets {
    static let msgpack = FuzzTarget("msgpack", dictionary: fieldNames, seeds: { seedStreams().flatMap { $0 }.map(MsgPackEncoder.encode) }) {
        input throws(Violation) in
        let decoder = MsgPackDecoder()
        guard case .value(let value, let consumed)? = try? decoder.decode(input) else { return false }
        try require(consumed >= 1 && consumed <= input.count, "consumed \(consumed) of \(input.count) bytes")
        // The encoder always picks the smallest form, so it never needs more bytes than the input used.
        let canonical = MsgPackEncoder.encode(value)
        try require(canonical.count <= consumed, "the smallest encoding (\(canonical.count) bytes) is longer than the input's (\(consumed))")
        let again = try mustDecode("a value's encoding") { () throws(MsgPackError) in try decoder.decode(canonical) }
        try require(again == .value(value, consumed: canonical.count), "a value decodes differently from its own encoding")
        // A value cut short is incomplete, never malformed: the connection waits for the rest.
        for cut in Set([0, consumed / 2, consumed - 1]) {
            try require((try? decoder.decode(Array(input[..<cut]))) == .needMoreData, "the first \(cut) bytes of a value are not 'need more data'")
        }
        return true
    }

    /// The Seqs of one client session, each waiting for what its command produces.
    enum Seq {
        static let handshake: UInt64 = 0
        static let stream: UInt64 = 1
        static let members: UInt64 = 2
        static let query: UInt64 = 3
        static let join: UInt64 = 4
        static let stats: UInt64 = 5
        static let commands: [(UInt64, SerfCommand)] = [
            (handshake, .handshake), (stream, .stream), (members, .members), (query, .query), (join, .join), (stats, .stats),
        ]
    }

    static let stream = FuzzTarget("serf", maxInputBytes: 8192, dictionary: fieldNames, seeds: { seedStreams().map(wire) }) {
        input throws(Violation) in
        let decoder = MsgPackDecoder()
        let whole = Result { () throws(MsgPackError) in try decoder.decodeAll(input) }
        let pieces = Result { () throws(MsgPackError) in try decodeInTwoReads(input, decoder) }
        try require((try? whole.get())?.values == (try? pieces.get()), "the values differ when the bytes arrive in two reads")
        guard let values = try? whole.get().values, !values.isEmpty else { return false }
        try checkSession(values)
        return true
    }

    /// Feeds the values to a demultiplexer as `SerfRPCClient.receive` does and checks each frame
    /// against what was asked on its Seq.
    private static func checkSession(_ values: [MsgPackValue]) throws(Violation) {
        var demux = SerfDemultiplexer()
        for (seq, command) in Seq.commands { demux.expect(seq: seq, command: command) }
        var accepted: Set<UInt64> = []
        var ended: Set<UInt64> = []
        var outstanding = demux.outstanding
        for value in values {
            let received: SerfDemultiplexer.Frame?
            do { received = try demux.receive(value) } catch {
                return  // a protocol violation closes the connection: nothing after it is read
            }
            try require(demux.outstanding <= outstanding, "the number of outstanding Seqs grew to \(demux.outstanding)")
            outstanding = demux.outstanding
            guard let frame = received else { continue }
            switch frame {
            case .reply(let seq, _, let body):
                let plain: Set<UInt64> = [Seq.handshake, Seq.members, Seq.join, Seq.stats]
                try require(plain.contains(seq) && !ended.contains(seq), "a reply on Seq \(seq), which was not waiting for one")
                ended.insert(seq)
                if seq == Seq.members, let body { _ = try? SerfMember.list(decoding: body) }
            case .accepted(let seq, let error):
                try require((seq == Seq.stream || seq == Seq.query) && !accepted.contains(seq), "an acceptance on Seq \(seq)")
                accepted.insert(seq)
                if !error.isEmpty { ended.insert(seq) }
            case .record(let seq, let body, let last):
                try require(accepted.contains(seq) && !ended.contains(seq), "a record on Seq \(seq) before its acceptance or after its end")
                try require(!last || seq == Seq.query, "a stream record marked as the last")
                if seq == Seq.query {
                    if last { ended.insert(seq) }
                    _ = try? SerfQueryEvent.decode(record: body)
                } else if let event = try? SerfStreamEvent.decode(record: body) {
                    if case .query(let query) = event, query.name == TreeHashAnnouncement.queryName {
                        _ = try? TreeHashAnnouncement(decoding: query.payload)
                    }
                } else {
                    // One undecodable record ends that stream; its later records are read and dropped.
                    demux.retire(seq: seq)
                    ended.insert(seq)
                }
            }
        }
    }

    /// The values as `MsgPackFrameDecoder` delivers them when the bytes come in two reads, split
    /// where the first byte says.
    private static func decodeInTwoReads(_ input: [UInt8], _ decoder: MsgPackDecoder) throws(MsgPackError) -> [MsgPackValue] {
        let split = input.first.map { Int($0) % (input.count + 1) } ?? 0
        var buffer: [UInt8] = []
        var values: [MsgPackValue] = []
        for read in [input[..<split], input[split...]] {
            buffer += read
            while case .value(let value, let consumed) = try decoder.decode(buffer) {
                values.append(value)
                buffer.removeFirst(consumed)
            }
        }
        return values
    }

    private static func wire(_ values: [MsgPackValue]) -> [UInt8] {
        values.flatMap { MsgPackEncoder.encode($0) }
    }

    /// Map keys of the agent's replies (Docs/serf-rpc.md §Key spelling).
    static let fieldNames = ["Seq", "Error", "Members", "Name", "Addr", "Port", "Tags", "Status", "Event", "LTime", "Payload",
        "Coalesce", "ID", "Type", "From", "member-join", "query", "user", "done", "response", "ack", "kvgossip-hash"]

    /// Replies and records shaped like the agent's (Docs/serf-rpc.md §Observed bytes), on the Seqs above.
    static func seedStreams() -> [[MsgPackValue]] {
        func header(_ seq: UInt64, _ error: String = "") -> MsgPackValue { ["Error": .string(error), "Seq": .uint(seq)] }
        func member(_ name: String, _ addr: [UInt8], status: String = "alive") -> MsgPackValue {
            [
                "Addr": .binary(addr), "DelegateCur": 5, "DelegateMax": 5, "DelegateMin": 2, "Name": .string(name),
                "Port": 7946, "ProtocolCur": 2, "ProtocolMax": 5, "ProtocolMin": 1, "Status": .string(status), "Tags": ["kvg": "7947"],
            ]
        }
        let announcement = SyncTargets.seedAnnouncements()[0].encoded
        let v6: [UInt8] = [0xfd] + [UInt8](repeating: 0, count: 14) + [1]
        return [
            [
                header(Seq.handshake),
                header(Seq.members), ["Members": [member("host-a", [127, 0, 0, 1]), member("host-b", v6, status: "failed")]],
                header(Seq.stats), ["agent": ["name": "host-a"], "serf": ["members": "2"]],
            ],
            [
                header(Seq.stream),
                header(Seq.stream), ["Event": "member-join", "Members": [member("host-c", [10, 0, 0, 3])]],
                header(Seq.stream), ["Event": "user", "LTime": 4, "Name": "kv", "Payload": .binary([1, 2, 3]), "Coalesce": false],
                header(Seq.stream),
                ["Event": "query", "ID": 1, "LTime": 9, "Name": .string(TreeHashAnnouncement.queryName), "Payload": .binary(announcement)],
            ],
            [
                header(Seq.query),
                header(Seq.query), ["From": "host-a", "Payload": nil, "Type": "ack"],
                header(Seq.query), ["From": "host-b", "Payload": .binary(announcement), "Type": "response"],
                header(Seq.query), ["From": "", "Payload": nil, "Type": "done"],
            ],
            [header(Seq.join, "Failed to join: dial tcp"), ["Num": 0], [1.5, -7, .float(2.5), .uint(UInt64.max), .binary([UInt8](repeating: 7, count: 300))]],
        ]
    }
}
