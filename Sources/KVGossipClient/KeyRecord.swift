import Foundation
import KVGossipCore

/// One record of a key, verified by the client (Docs/client.md §Verification): the bytes and who
/// signed them when, every field read from the signed record itself.
///
/// Unlike the control API's `RecordInfo`, this carries no dirtiness: that changes without the
/// record changing, so subscriptions report it separately (see ``Dirtiness``).
public struct KeyRecord: Sendable, Hashable, CustomStringConvertible {
    /// The key, e.g. `/app/db/url`.
    public let key: String
    /// The value bytes (empty for a tombstone; an empty value is still a value).
    public let value: Data
    /// Whether this record is a signed delete.
    public let isTombstone: Bool
    /// The record's hybrid logical clock timestamp, raw: `(Unix ms << 16) | counter`.
    public let timestamp: UInt64
    /// The timestamp's physical part in RFC 3339 (UTC, milliseconds).
    public let time: String
    /// The signer's public key text (`ed25519:…`).
    public let signer: String
    /// BLAKE2b-256 of the record's signed bytes, hex: the record's identity.
    public let digest: String
    /// The grant chain that authorizes the signer, root first (`["root"]` for the root itself).
    public let chain: [String]

    /// Builds a record description; the client makes these from agent answers.
    public init(
        key: String, value: Data, isTombstone: Bool, timestamp: UInt64, time: String, signer: String, digest: String,
        chain: [String]
    ) {
        self.key = key
        self.value = value
        self.isTombstone = isTombstone
        self.timestamp = timestamp
        self.time = time
        self.signer = signer
        self.digest = digest
        self.chain = chain
    }

    /// A record that passed verification, with the chain that authorized it (empty when the root
    /// signed it, shown as `["root"]` as the agent shows it).
    init(verified record: Record, chain: [Grant]) {
        self.init(
            key: record.key.path, value: Data(record.value), isTombstone: record.kind == .tombstone, timestamp: record.timestamp.raw,
            time: record.timestamp.rfc3339, signer: record.signer.text, digest: record.digest.hex,
            chain: chain.isEmpty ? ["root"] : chain.map(\.chainLine))
    }

    /// The value as UTF-8 text, or nil when it is not valid UTF-8.
    public var string: String? { String(data: value, encoding: .utf8) }

    /// The key, the value (as text when it is UTF-8) or "deleted", and the time.
    public var description: String {
        isTombstone ? "\(key) deleted at \(time)" : "\(key) = \(string.map { "\"\($0)\"" } ?? "<\(value.count) bytes>") at \(time)"
    }
}

/// What a key holds, as far as the client knows.
///
/// Single-key subscriptions watch tombstones too, so a deleted key (`deleted`) is told apart from a
/// key that never had a value or was unset by a revocation (`absent`). Writers need the tombstone's
/// timestamp to mint after it, and programs can tell "removed on purpose" from "never configured".
public enum KeyValue: Sendable, Hashable, CustomStringConvertible {
    /// No answer yet: the subscription is new, or its interest was culled and forgotten.
    case unknown
    /// The agent holds no record for the key.
    case absent
    /// The key holds this value.
    case value(KeyRecord)
    /// The key was deleted by this signed tombstone.
    case deleted(KeyRecord)

    init(_ record: KeyRecord?) {
        guard let record else {
            self = .absent
            return
        }
        self = record.isTombstone ? .deleted(record) : .value(record)
    }

    /// The value bytes when the key holds a value, else nil.
    public var data: Data? {
        if case .value(let r) = self { r.value } else { nil }
    }

    /// The value as UTF-8 text when the key holds a value, else nil.
    public var string: String? {
        if case .value(let r) = self { r.string } else { nil }
    }

    /// The record behind the value or tombstone, if any.
    public var record: KeyRecord? {
        switch self {
        case .value(let r), .deleted(let r): r
        case .unknown, .absent: nil
        }
    }

    /// A short form for logs: the value as quoted text, its size, or the state.
    public var description: String {
        switch self {
        case .unknown: "unknown"
        case .absent: "absent"
        case .value(let r): r.string.map { "\"\($0)\"" } ?? "<\(r.value.count) bytes>"
        case .deleted(let r): "deleted at \(r.time)"
        }
    }
}
