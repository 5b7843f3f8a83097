import Foundation
import KVGossipCore

/// The control API's messages: one JSON object per frame (see `ControlFraming`). A request names
/// an operation; every answer carries the request's id, so a watch can stream many answers while
/// other requests are served on the same connection.
public struct ControlRequest: Codable, Sendable, Equatable {
    public enum Operation: String, Codable, Sendable {
        case get, list, watch, unwatch, put, mint, delete
        case grantsAdd = "grants-add"
        case grantsList = "grants-list"
        case revoke, status, sync
    }

    public var id: UInt64
    public var op: Operation
    /// get, mint, delete, watch of one key.
    public var key: String?
    /// list/watch: keys at or below this prefix.
    public var prefix: String?
    /// list/watch: keys matching this pattern.
    public var pattern: String?
    /// list/watch: keys matching any of these patterns (at most `maxPatterns`), read at one moment.
    public var patterns: [String]?
    /// mint: the value bytes.
    public var value: Data?
    /// put: a record encoding signed by the client; revoke: a revocation encoding.
    public var object: Data?
    /// grants-add: grant encodings.
    public var grants: [Data]?
    /// list/get: include tombstones (they are hidden by default, as in the filesystem).
    public var includeTombstones: Bool?
    /// get/list/watch: carry each record's full encoding (for clients that verify records
    /// themselves) instead of its value alone; the value then travels only inside the encoding.
    public var includeEncoding: Bool?
    /// list: the most records wanted in this answer (the agent may send fewer). Without it the
    /// whole selection must fit in one answer or the request is refused with `too-large`.
    public var limit: Int?
    /// list: continue after this key, the `next` of the previous answer.
    public var after: String?
    /// sync: the peer's HOST:PORT (all known peers when absent).
    public var peer: String?

    public init(id: UInt64, op: Operation) {
        self.id = id
        self.op = op
    }

    /// The most patterns one list or watch may name.
    public static let maxPatterns = 512
}

public struct ControlResponse: Codable, Sendable, Equatable {
    public var id: UInt64
    public var ok: Bool
    public var error: ControlError?
    public var record: RecordInfo?
    public var records: [RecordInfo]?
    public var event: WatchEvent?
    public var grants: [GrantInfo]?
    public var grantResults: [String]?
    public var status: StatusInfo?
    /// put/mint/delete: what happened ("accepted", "duplicate", "superseded").
    public var outcome: String?
    /// revoke: keys unset by the cascade.
    public var unset: [String]?
    /// sync: one line per session.
    public var syncs: [SyncSummary]?
    /// list: more records follow; ask again with `after` set to this key. Absent on the last page.
    public var next: String?

    public init(id: UInt64, ok: Bool = true) {
        self.id = id
        self.ok = ok
    }

    public static func failure(_ id: UInt64, _ reason: String, _ message: String) -> ControlResponse {
        var r = ControlResponse(id: id, ok: false)
        r.error = ControlError(reason: reason, message: message)
        return r
    }
}

/// A refusal reason code (Docs/contract.md §Limits and errors) or `bad-request`, `not-found`, `internal`,
/// with a sentence.
public struct ControlError: Codable, Sendable, Equatable, Error, CustomStringConvertible {
    public var reason: String
    public var message: String

    public init(reason: String, message: String) {
        self.reason = reason
        self.message = message
    }

    public var description: String { "\(reason): \(message)" }
}

/// A record as clients see it: the value and everything `getfattr` would show.
///
/// The value travels once: as `value`, or, when the client asked for `encoded`, only inside the
/// encoding (decoding a `RecordInfo` takes the value out of it).
public struct RecordInfo: Codable, Sendable, Equatable {
    public var key: String
    public var kind: String
    public var value: Data
    public var timestamp: UInt64
    public var time: String
    public var signer: String
    public var digest: String
    public var chain: [String]
    public var state: String
    public var dirty: Bool
    /// The record's full encoding, for clients that verify it themselves.
    public var encoded: Data?

    public init(
        key: String, kind: String, value: Data, timestamp: UInt64, time: String, signer: String, digest: String,
        chain: [String], state: String, dirty: Bool, encoded: Data?
    ) {
        self.key = key
        self.kind = kind
        self.value = value
        self.timestamp = timestamp
        self.time = time
        self.signer = signer
        self.digest = digest
        self.chain = chain
        self.state = state
        self.dirty = dirty
        self.encoded = encoded
    }
}

/// One step of a watch: first `initial` (the matching records now, in pages), then changes.
public struct WatchEvent: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// The current records (absent keys simply are not listed), one page per event; every
        /// page but the last has `more`.
        case initial
        /// A new value or tombstone.
        case changed
        /// The key left this node's tree (revocation cascade).
        case removed
        /// The key's dirtiness changed (`key`), or that of many keys at once (`keys`).
        case state
        /// The watcher read too slowly and changes were dropped: what it holds is stale. A fresh
        /// `initial` follows at once, then changes again.
        case fellBehind = "fell-behind"
    }

    public var kind: Kind
    public var key: String?
    public var record: RecordInfo?
    public var records: [RecordInfo]?
    public var state: String?
    /// initial: more pages of the initial records follow.
    public var more: Bool?
    /// state: the keys that are now in `state`.
    public var keys: [String]?

    public init(kind: Kind) { self.kind = kind }
}

public struct GrantInfo: Codable, Sendable, Equatable {
    public var id: String
    public var issuer: String
    public var issuee: String
    public var patterns: [String]
    public var mayDelegate: Bool
    public var notBefore: String
    public var expires: String?
    public var revoked: Bool

    public init(_ g: Grant, revoked: Bool) {
        id = g.id.hex
        issuer = g.issuer.text
        issuee = g.issuee.text
        patterns = g.patterns.map(\.text)
        mayDelegate = g.mayDelegate
        notBefore = HLC(physicalMs: g.notBefore).rfc3339
        expires = g.expires.map { HLC(physicalMs: $0).rfc3339 }
        self.revoked = revoked
    }
}

public struct StatusInfo: Codable, Sendable, Equatable {
    /// The node's name in Serf, in logs and to its peers.
    public var name: String?
    /// The agent's process id.
    public var pid: Int32?
    /// What is wrong with this agent now and needs an operator, one sentence each (empty when healthy).
    public var problems: [String]?
    /// Times the mount was unmounted from outside since start (the agent mounts it again).
    public var mountLosses: Int?
    /// Risks worth knowing that need no action to keep working.
    public var warnings: [String]?
    public var node: String
    public var fingerprint: String
    public var root: String
    public var treeHash: String
    public var records: Int
    public var revocations: Int
    public var grants: Int
    public var mount: String?
    public var dirty: [String: Int]
    public var refusals: [String: Int]
    public var peers: [PeerInfo]
    /// Values hidden in the mount by a directory of the same name, in key order: the first
    /// `ShadowedValues.listed` of them.
    public var shadowed: [String]
    /// How many values are shadowed in all.
    public var shadowedTotal: Int?
    /// False while changes are still being folded into `shadowed` (a large sync, or the scan at start).
    public var shadowedUpToDate: Bool?
    public var startedAt: String

    public init(
        node: String, fingerprint: String, root: String, treeHash: String, records: Int, revocations: Int, grants: Int,
        mount: String?, dirty: [String: Int], refusals: [String: Int], peers: [PeerInfo], shadowed: [String], startedAt: String
    ) {
        self.node = node
        self.fingerprint = fingerprint
        self.root = root
        self.treeHash = treeHash
        self.records = records
        self.revocations = revocations
        self.grants = grants
        self.mount = mount
        self.dirty = dirty
        self.refusals = refusals
        self.peers = peers
        self.shadowed = shadowed
        self.startedAt = startedAt
    }
}

public struct PeerInfo: Codable, Sendable, Equatable {
    public var name: String
    public var address: String
    public var syncPort: Int?
    public var lastSync: String?
    public var treeHashAgrees: Bool?

    public init(name: String, address: String, syncPort: Int?, lastSync: String?, treeHashAgrees: Bool?) {
        self.name = name
        self.address = address
        self.syncPort = syncPort
        self.lastSync = lastSync
        self.treeHashAgrees = treeHashAgrees
    }
}

/// The outcome of one sync session asked for with `kvgossip sync`.
public struct SyncSummary: Codable, Sendable, Equatable {
    public var peer: String
    public var ok: Bool
    public var alreadyEqual: Bool
    public var differences: Int
    public var sent: Int
    public var received: Int
    public var refused: Int
    public var error: String?

    public init(peer: String, ok: Bool, alreadyEqual: Bool, differences: Int, sent: Int, received: Int, refused: Int, error: String?) {
        self.peer = peer
        self.ok = ok
        self.alreadyEqual = alreadyEqual
        self.differences = differences
        self.sent = sent
        self.received = received
        self.refused = refused
        self.error = error
    }
}
