import KVGossipCore

/// What `/metrics` reports, gathered at scrape time from the node and the gossip engine (no
/// instrumentation library: every figure already exists as state or a counter).
public struct MetricsSnapshot: Sendable, Equatable {
    public struct Peer: Sendable, Equatable {
        public var name: String
        public var address: String
        /// Seconds since the epoch of the last completed session this node started with the peer.
        public var lastSyncSeconds: Double?
        public var treeHashAgrees: Bool?

        public init(name: String, address: String, lastSyncSeconds: Double?, treeHashAgrees: Bool?) {
            self.name = name
            self.address = address
            self.lastSyncSeconds = lastSyncSeconds
            self.treeHashAgrees = treeHashAgrees
        }
    }

    public var version = ""
    public var syncProtocol = LinkHandshake.protocolVersion
    public var startTimeSeconds = 0.0
    /// Stored records, values and tombstones.
    public var records = 0
    public var revocations = 0
    public var grants = 0
    public var mounted = false
    /// Times the mount was unmounted from outside since start (each one is remounted).
    public var mountLosses = 0
    /// Times the mount's replay helper ended and another was started.
    public var helperRestarts = 0
    /// Problems that need an operator (as `status` lists them).
    public var problems = 0
    /// False until this node completed its first reconciliation (every key counts as unsynced).
    public var synced = true
    public var dirty: [KeyState: Int] = [:]
    public var refusals: [RefusalReason: Int] = [:]
    public var peers: [Peer] = []
    /// Sessions this node started, by result ("ok", "failed").
    public var syncSessions: [String: Int] = [:]
    /// Pushes to one peer, by result ("ok", "failed").
    public var pushes: [String: Int] = [:]
    /// Pulled batches whose checks began as they arrived, before their session reached them.
    public var batchesCheckedOnArrival = 0

    public init() {}

    /// The Prometheus text exposition format (version 0.0.4). Every label value of a fixed set
    /// (states, reasons, results) is written even when zero, so series do not come and go.
    public var prometheusText: String {
        var out = MetricsText()
        out.family("kvgossip_build_info", "gauge", "The release and sync protocol this agent speaks.")
        out.sample("kvgossip_build_info", ["version": version, "sync_protocol": String(syncProtocol)], 1)
        out.family("kvgossip_start_time_seconds", "gauge", "When the agent started, in seconds since the epoch.")
        out.sample("kvgossip_start_time_seconds", [:], startTimeSeconds)
        out.family("kvgossip_records", "gauge", "Records stored (values and tombstones).")
        out.sample("kvgossip_records", [:], Double(records))
        out.family("kvgossip_revocations", "gauge", "Revocations stored.")
        out.sample("kvgossip_revocations", [:], Double(revocations))
        out.family("kvgossip_grants_held", "gauge", "Grants this node holds for minting.")
        out.sample("kvgossip_grants_held", [:], Double(grants))
        out.family("kvgossip_mounted", "gauge", "1 while the tree is mounted.")
        out.sample("kvgossip_mounted", [:], mounted ? 1 : 0)
        out.family("kvgossip_mount_losses_total", "counter", "Times the mount was unmounted from outside since start (the agent mounts it again).")
        out.sample("kvgossip_mount_losses_total", [:], Double(mountLosses))
        out.family("kvgossip_mount_helper_restarts_total", "counter", "Times the mount's replay helper ended and another was started (changes made meanwhile are replayed then).")
        out.sample("kvgossip_mount_helper_restarts_total", [:], Double(helperRestarts))
        out.family("kvgossip_problems", "gauge", "Problems that need an operator now (kvgossip status lists them); 0 when healthy.")
        out.sample("kvgossip_problems", [:], Double(problems))
        out.family("kvgossip_synced", "gauge", "0 until this node completed its first reconciliation since start (until then every key is unsynced).")
        out.sample("kvgossip_synced", [:], synced ? 1 : 0)
        out.family("kvgossip_dirty_keys", "gauge", "Keys holding a value that are dirty, by state, as kvgossip status counts them (Docs/contract.md §Key states).")
        for state in KeyState.allCases where state.isDirty {
            out.sample("kvgossip_dirty_keys", ["state": state.rawValue], Double(dirty[state] ?? 0))
        }
        out.family("kvgossip_refusals_total", "counter", "Refusals since start, by reason: records, revocations, links and TCP control clients.")
        for reason in RefusalReason.allCases {
            out.sample("kvgossip_refusals_total", ["reason": reason.rawValue], Double(refusals[reason] ?? 0))
        }
        out.family("kvgossip_peers", "gauge", "Peers known now (live Serf members and static peers).")
        out.sample("kvgossip_peers", [:], Double(peers.count))
        out.family("kvgossip_peer_last_sync_timestamp_seconds", "gauge", "Last completed session started with the peer.")
        for p in peers {
            if let t = p.lastSyncSeconds { out.sample("kvgossip_peer_last_sync_timestamp_seconds", ["peer": p.name, "address": p.address], t) }
        }
        out.family("kvgossip_peer_tree_hash_agrees", "gauge", "1 if the tree hashes were equal at the end of the last session with the peer.")
        for p in peers {
            if let agrees = p.treeHashAgrees { out.sample("kvgossip_peer_tree_hash_agrees", ["peer": p.name, "address": p.address], agrees ? 1 : 0) }
        }
        out.family("kvgossip_sync_sessions_total", "counter", "Sync sessions this node started, by result.")
        for result in ["ok", "failed"] { out.sample("kvgossip_sync_sessions_total", ["result": result], Double(syncSessions[result] ?? 0)) }
        out.family("kvgossip_pushes_total", "counter", "Records pushed to one peer, by result.")
        for result in ["ok", "failed"] { out.sample("kvgossip_pushes_total", ["result": result], Double(pushes[result] ?? 0)) }
        out.family("kvgossip_sync_batches_checked_on_arrival_total", "counter", "Pulled batches whose signature checks began as they arrived.")
        out.sample("kvgossip_sync_batches_checked_on_arrival_total", [:], Double(batchesCheckedOnArrival))
        return out.text
    }
}

/// Builds exposition text: HELP and TYPE lines, then samples with escaped, sorted labels.
struct MetricsText {
    private(set) var text = ""

    mutating func family(_ name: String, _ type: String, _ help: String) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
    }

    mutating func sample(_ name: String, _ labels: [String: String], _ value: Double) {
        text += name
        if !labels.isEmpty {
            text += "{" + labels.sorted { $0.key < $1.key }.map { "\($0.key)=\"\(Self.escape($0.value))\"" }.joined(separator: ",") + "}"
        }
        text += " " + Self.format(value) + "\n"
    }

    /// Backslash, double quote and newline are the characters a label value escapes.
    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    /// Whole numbers without a fraction, others as Swift prints them (both are valid floats).
    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}
