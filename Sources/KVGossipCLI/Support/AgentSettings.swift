import Foundation
import KVGossipControl
import KVGossipCore
import KVGossipSync
import Logging

/// Every agent setting, as the config file (`/etc/kvgossip/agent.json`) spells them. Each field
/// is optional: command-line flags override the file, the file overrides the defaults.
struct AgentSettings: Codable, Equatable {
    var data: String?
    var root: String?
    var key: String?
    var mount: String?
    var control: String?
    var controlListen: String?
    /// HOST:PORT for Prometheus `/metrics` over HTTP; off when absent.
    var metricsListen: String?
    var listen: String?
    var peers: [String]?
    var name: String?
    var syncInterval: Double?
    var clusterSecret: String?
    var logLevel: String?
    /// RPC address of a Serf agent to use instead of spawning one.
    var serf: String?
    /// false: no Serf at all (static peers only); true: spawn one (the default when `serf` is on PATH).
    var serfSpawn: Bool?
    var join: [String]?
    var serfBind: String?
    var serfRPC: String?
    var serfProfile: String?
    var mountUID: UInt32?
    var mountGID: UInt32?
    var mountAllowOther: Bool?
    var scratchPatterns: [String]?
    /// Readers use the kernel's page cache (faster; see MountOptions.readerPageCache).
    var mountPageCache: Bool?
    var maxSkewSeconds: Double?
    /// Earlier versions kept per key, and the bytes all of them may take (Docs/history.md §Bounds).
    var historyVersions: Int?
    var historyBytes: Int?
    // What one control client may cost (ControlLimits; Docs/operations.md §Control API limits).
    var controlConnections: Int?
    var controlConnectionsPerAddress: Int?
    var controlWatchesPerConnection: Int?
    var controlWatches: Int?
    var controlWatchBacklog: Int?
    var controlConnectionBacklog: Int?
    var controlFrameSeconds: Double?
    /// When the unit is told READY=1: "mounted" (the mount and sockets answer; keys read as
    /// unsynced until the first reconciliation) or "synced" (also after that reconciliation).
    var readiness: String?

    static let defaults = AgentSettings(
        data: "/var/lib/kvgossip", control: ControlEndpoint.defaultSocketPath, listen: "0.0.0.0:7947", peers: [],
        syncInterval: 30, logLevel: "info", join: [], serfBind: "0.0.0.0:7946", serfRPC: "127.0.0.1:7373", serfProfile: "lan",
        mountUID: 0, mountGID: 0, mountAllowOther: true, mountPageCache: false, maxSkewSeconds: 30,
        // Named here, from the values the agent's parts use, so that --check-config shows them.
        historyVersions: HistoryBounds.default.versionsPerKey, historyBytes: HistoryBounds.default.totalBytes,
        controlConnections: ControlLimits.default.connections, controlConnectionsPerAddress: ControlLimits.default.connectionsPerAddress,
        controlWatchesPerConnection: ControlLimits.default.watchesPerConnection, controlWatches: ControlLimits.default.watches,
        controlWatchBacklog: ControlLimits.default.watchBacklog, controlConnectionBacklog: ControlLimits.default.connectionBacklog,
        controlFrameSeconds: ControlLimits.default.frameSeconds, readiness: "mounted")

    /// Fields set in `other` win.
    func overridden(by other: AgentSettings) -> AgentSettings {
        var out = self
        func take<T>(_ path: WritableKeyPath<AgentSettings, T?>) {
            if let v = other[keyPath: path] { out[keyPath: path] = v }
        }
        take(\.data); take(\.root); take(\.key); take(\.mount); take(\.control); take(\.controlListen); take(\.metricsListen)
        take(\.listen); take(\.name); take(\.syncInterval); take(\.clusterSecret); take(\.logLevel)
        take(\.serf); take(\.serfSpawn); take(\.serfBind); take(\.serfRPC); take(\.serfProfile)
        take(\.mountUID); take(\.mountGID); take(\.mountAllowOther); take(\.scratchPatterns); take(\.mountPageCache)
        take(\.maxSkewSeconds); take(\.historyVersions); take(\.historyBytes)
        take(\.controlConnections); take(\.controlConnectionsPerAddress); take(\.controlWatchesPerConnection)
        take(\.controlWatches); take(\.controlWatchBacklog); take(\.controlConnectionBacklog); take(\.controlFrameSeconds)
        take(\.readiness)
        if let peers = other.peers, !peers.isEmpty { out.peers = peers }
        if let join = other.join, !join.isEmpty { out.join = join }
        return out
    }

    /// Reads a settings file. Unknown fields are refused, as the template tool refuses them: a
    /// misspelt `mountUid` must not silently leave the mount owned by root.
    static func load(_ path: String) throws -> AgentSettings {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch { throw CLIError("cannot read \(path): \(Files.reason(error))") }
        if let top = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
            let refusal = UnknownFields.refusal(in: top, known: Self.fieldNames)
        {
            throw CLIError("\(path): \(refusal)")
        }
        let decoder = JSONDecoder()
        do { return try decoder.decode(AgentSettings.self, from: data) } catch let DecodingError.dataCorrupted(context) {
            throw CLIError("\(path): not valid JSON: \(context.debugDescription)")
        } catch let DecodingError.typeMismatch(_, context) {
            throw CLIError("\(path): \(context.codingPath.map(\.stringValue).joined(separator: ".")) has the wrong type")
        } catch {
            throw CLIError("\(path): \(error)")
        }
    }

    /// Every field's name as the file spells it (the properties', which the coding keys repeat).
    static let fieldNames = Set(Mirror(reflecting: AgentSettings()).children.compactMap(\.label))

    /// The control API's limits: the defaults, with whatever the settings name.
    var controlLimits: ControlLimits {
        var limits = ControlLimits()
        if let v = controlConnections { limits.connections = v }
        if let v = controlConnectionsPerAddress { limits.connectionsPerAddress = v }
        if let v = controlWatchesPerConnection { limits.watchesPerConnection = v }
        if let v = controlWatches { limits.watches = v }
        if let v = controlWatchBacklog { limits.watchBacklog = v }
        if let v = controlConnectionBacklog { limits.connectionBacklog = v }
        if let v = controlFrameSeconds { limits.frameSeconds = v }
        return limits
    }

    /// What history keeps: the defaults, with whatever the settings name.
    var historyBounds: HistoryBounds {
        var bounds = HistoryBounds.default
        if let v = historyVersions { bounds.versionsPerKey = v }
        if let v = historyBytes { bounds.totalBytes = v }
        return bounds
    }

    /// The longest time any setting counted in seconds may name: a day.
    static let longestSeconds: Double = 86_400

    static func isSeconds(_ value: Double?) -> Bool { value.map { $0 > 0 && $0 <= longestSeconds } ?? false }

    /// Every problem at once, so `--check-config` reports them all.
    func problems() -> [String] {
        var out: [String] = []
        if let root { if (try? PublicKey(text: root)) == nil { out.append("root: not an ed25519:… public key") } } else {
            out.append("root: required (the cluster's root public key)")
        }
        if !["mounted", "synced"].contains(readiness ?? "") { out.append("readiness: mounted or synced, got \(readiness ?? "")") }
        if Logger.Level(rawValue: logLevel ?? "") == nil { out.append("logLevel: unknown level \(logLevel ?? "")") }
        if PeerAddress(parsing: listen ?? "") == nil { out.append("listen: expected HOST:PORT, got \(listen ?? "")") }
        for p in peers ?? [] where PeerAddress(parsing: p) == nil { out.append("peers: expected HOST:PORT, got \(p)") }
        for j in join ?? [] where PeerAddress(parsing: j) == nil { out.append("join: expected HOST:PORT, got \(j)") }
        if let serf, PeerAddress(parsing: serf) == nil { out.append("serf: expected HOST:PORT, got \(serf)") }
        if PeerAddress(parsing: serfBind ?? "") == nil { out.append("serfBind: expected HOST:PORT") }
        if PeerAddress(parsing: serfRPC ?? "") == nil { out.append("serfRPC: expected HOST:PORT") }
        if !["lan", "wan", "local"].contains(serfProfile ?? "") { out.append("serfProfile: lan, wan or local") }
        // Bounded above too: the agent counts in milliseconds, and a day is already far past any use.
        for (name, value) in [("syncInterval", syncInterval), ("maxSkewSeconds", maxSkewSeconds)] where !Self.isSeconds(value) {
            out.append("\(name): must be positive and at most \(Int(Self.longestSeconds)) seconds, got \(value.map { "\($0)" } ?? "none")")
        }
        let counts: [(String, Int?)] = [
            ("controlConnections", controlConnections), ("controlConnectionsPerAddress", controlConnectionsPerAddress),
            ("controlWatchesPerConnection", controlWatchesPerConnection), ("controlWatches", controlWatches),
            ("controlWatchBacklog", controlWatchBacklog), ("controlConnectionBacklog", controlConnectionBacklog),
        ]
        for (name, value) in counts where value.map({ $0 < 1 }) == true { out.append("\(name): must be at least 1") }
        if let historyVersions, historyVersions < 0 { out.append("historyVersions: must be 0 (no history) or more") }
        if let historyBytes, historyBytes < 0 { out.append("historyBytes: must be 0 (no history) or more") }
        if let controlFrameSeconds, !Self.isSeconds(controlFrameSeconds) {
            out.append("controlFrameSeconds: must be positive and at most \(Int(Self.longestSeconds)) seconds, got \(controlFrameSeconds)")
        }
        if let controlListen, case .unix = ControlEndpoint(parsing: controlListen) {
            out.append("controlListen: expected HOST:PORT, got \(controlListen)")
        }
        if let metricsListen, PeerAddress(parsing: metricsListen) == nil { out.append("metricsListen: expected HOST:PORT, got \(metricsListen)") }
        if let key, !FileManager.default.isReadableFile(atPath: key) { out.append("key: cannot read \(key)") }
        if let clusterSecret, !FileManager.default.isReadableFile(atPath: clusterSecret) { out.append("clusterSecret: cannot read \(clusterSecret)") }
        if let mount {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: mount, isDirectory: &isDir), !isDir.boolValue {
                out.append("mount: \(mount) exists and is not a directory")
            }
        }
        for p in scratchPatterns ?? [] where p.isEmpty || p.contains("/") { out.append("scratchPatterns: \"\(p)\" must be a non-empty name pattern without /") }
        return out
    }
}
