@testable import KVGossipSerf

/// Serf reply objects built with the encoder, shaped like the bytes recorded in
/// Docs/serf-rpc.md §Observed bytes (Go sends header keys sorted: Error, then Seq).
enum SerfFixtures {
    static func header(_ seq: UInt64, _ error: String = "") -> MsgPackValue {
        ["Error": .string(error), "Seq": .uint(seq)]
    }

    static func member(
        _ name: String, addr: [UInt8] = [127, 0, 0, 1], port: UInt64 = 7946, tags: MsgPackValue = ["kvg": "7001"],
        status: String = "alive"
    ) -> MsgPackValue {
        // Key order as the agent sends them (alphabetical), with the recorded widths: Port as cd.
        [
            "Addr": .binary(addr), "DelegateCur": 5, "DelegateMax": 5, "DelegateMin": 2, "Name": .string(name),
            "Port": .uint(port), "ProtocolCur": 2, "ProtocolMax": 5, "ProtocolMin": 1, "Status": .string(status),
            "Tags": tags,
        ]
    }

    static func queryRecord(_ type: String, from: String, payload: [UInt8]? = nil) -> MsgPackValue {
        ["From": .string(from), "Payload": payload.map { .binary($0) } ?? .null, "Type": .string(type)]
    }

    /// The concatenated wire bytes of `values`.
    static func wire(_ values: [MsgPackValue]) -> [UInt8] {
        values.flatMap { MsgPackEncoder.encode($0) }
    }

    /// Decodes a recorded byte stream object by object and feeds it to a demultiplexer.
    static func frames(_ bytes: [UInt8], into demux: inout SerfDemultiplexer) throws -> [SerfDemultiplexer.Frame] {
        let (values, consumed) = try MsgPackDecoder().decodeAll(bytes)
        precondition(consumed == bytes.count)
        return try values.compactMap { try demux.receive($0) }
    }
}
