import Foundation
import KVGossipCore

/// The value travels once. An answer that carries the record's encoding (asked for with
/// `includeEncoding`) leaves `value` out, and decoding takes it from the encoding, so a record
/// never costs its value twice on the wire.
extension RecordInfo {
    enum CodingKeys: String, CodingKey {
        case key, kind, value, timestamp, time, signer, digest, chain, state, dirty, encoded
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let encoded = try c.decodeIfPresent(Data.self, forKey: .encoded)
        let value: Data
        if let plain = try c.decodeIfPresent(Data.self, forKey: .value) {
            value = plain
        } else if let encoded {
            var limits = Limits()
            limits.maxValueBytes = Int(UInt32.max)
            do { value = Data(try Record(decoding: [UInt8](encoded), limits: limits).value) } catch {
                throw DecodingError.dataCorruptedError(forKey: .encoded, in: c, debugDescription: "not a record encoding: \(error)")
            }
        } else {
            throw DecodingError.keyNotFound(CodingKeys.value, .init(codingPath: c.codingPath, debugDescription: "a record needs value or encoded"))
        }
        self.init(
            key: try c.decode(String.self, forKey: .key), kind: try c.decode(String.self, forKey: .kind), value: value,
            timestamp: try c.decode(UInt64.self, forKey: .timestamp), time: try c.decode(String.self, forKey: .time),
            signer: try c.decode(String.self, forKey: .signer), digest: try c.decode(String.self, forKey: .digest),
            chain: try c.decode([String].self, forKey: .chain), state: try c.decode(String.self, forKey: .state),
            dirty: try c.decode(Bool.self, forKey: .dirty), encoded: encoded)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(key, forKey: .key)
        try c.encode(kind, forKey: .kind)
        if let encoded { try c.encode(encoded, forKey: .encoded) } else { try c.encode(value, forKey: .value) }
        try c.encode(timestamp, forKey: .timestamp)
        try c.encode(time, forKey: .time)
        try c.encode(signer, forKey: .signer)
        try c.encode(digest, forKey: .digest)
        try c.encode(chain, forKey: .chain)
        try c.encode(state, forKey: .state)
        try c.encode(dirty, forKey: .dirty)
    }
}
