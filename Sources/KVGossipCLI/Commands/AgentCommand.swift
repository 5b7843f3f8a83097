import ArgumentParser
import CFuse3
import Foundation
import KVGossipControl
import KVGossipCore
import KVGossipNode
import KVGossipStore
import KVGossipSync
import Logging

struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run the agent: the durable tree, the control API and (with --mount) the filesystem.",
        discussion: """
            The agent keeps this host's copy of the tree in DIR (SQLite), serves the control API on \
            a Unix socket, and with --mount shows the tree as files. Its node key is --key, or \
            DIR/node.key, generated on first start (its public key is logged and shown by \
            `kvgossip status`; give it grants with `kvgossip grants add`). SIGTERM or SIGINT unmount \
            cleanly and stop.
            """)

    @Option(help: ArgumentHelp("Settings file (JSON, every flag below has a field); flags override it.", valueName: "FILE"))
    var config: String?
    @Flag(name: .customLong("check-config"), help: "Validate the settings (file and flags), print them, and exit.")
    var checkConfig = false

    @Option(help: ArgumentHelp("Data directory. Default: /var/lib/kvgossip.", valueName: "DIR")) var data: String?
    @Option(help: ArgumentHelp("The cluster's root public key (ed25519:…).", valueName: "PUBKEY")) var root: String?
    @Option(help: ArgumentHelp("Node secret key file. Default: DIR/node.key (created if missing).", valueName: "FILE")) var key: String?
    @Option(help: ArgumentHelp("Mount the tree here.", valueName: "DIR")) var mount: String?
    @Flag(name: .customLong("mount-page-cache"), help: ArgumentHelp(
        "Let readers of the mount use the kernel's page cache, and a file held open across a change may read bytes of the new version. Rarely worth it: by default (Linux 6.9 and later) readers already read at memory speed from a backing file of their own version."))
    var mountPageCache = false
    @Option(help: ArgumentHelp("Control socket path. Default: \(ControlEndpoint.defaultSocketPath).", valueName: "PATH")) var control: String?
    @Option(name: .customLong("control-listen"), help: ArgumentHelp(
        "Also serve the control API on TCP for remote clients (reads and client-signed writes only).", valueName: "HOST:PORT"))
    var controlListen: String?
    @Option(name: .customLong("metrics-listen"), help: ArgumentHelp(
        "Serve Prometheus metrics at http://HOST:PORT/metrics (off by default).", valueName: "HOST:PORT"))
    var metricsListen: String?
    @Option(help: ArgumentHelp("Serve sync sessions here (peers dial it). Default: 0.0.0.0:7947.", valueName: "HOST:PORT")) var listen: String?
    @Option(help: ArgumentHelp("A static peer's sync address (repeatable), for hosts without Serf.", valueName: "HOST:PORT"))
    var peer: [String] = []
    @Option(help: ArgumentHelp("This node's name in logs, in Serf and to peers. Default: the host name.", valueName: "NAME")) var name: String?
    @Option(name: .customLong("sync-interval"), help: ArgumentHelp("Mean seconds between anti-entropy rounds with a random peer. Default: 30.", valueName: "SECONDS"))
    var syncInterval: Double?
    @Option(name: .customLong("cluster-secret"), help: ArgumentHelp(
        "Encrypt and authenticate sync connections with this secret (kvgossip keygen --cluster-secret).", valueName: "FILE"))
    var clusterSecret: String?
    @Option(help: ArgumentHelp("RPC address of a running Serf agent to use (instead of spawning one).", valueName: "HOST:PORT")) var serf: String?
    @Flag(name: .customLong("serf-spawn"), help: "Spawn and supervise a Serf agent (the default when serf is on PATH).")
    var serfSpawn = false
    @Flag(name: .customLong("no-serf"), help: "Run without Serf: static peers (--peer) only.") var noSerf = false
    @Option(help: ArgumentHelp("A Serf address to join (repeatable), passed to the spawned Serf.", valueName: "HOST:PORT")) var join: [String] = []
    @Option(name: .customLong("serf-bind"), help: ArgumentHelp("Gossip address of the spawned Serf. Default: 0.0.0.0:7946.", valueName: "HOST:PORT"))
    var serfBind: String?
    @Option(name: .customLong("serf-rpc"), help: ArgumentHelp("RPC address of the spawned Serf. Default: 127.0.0.1:7373.", valueName: "HOST:PORT"))
    var serfRPC: String?
    @Option(name: .customLong("serf-profile"), help: ArgumentHelp("Timing profile of the spawned Serf: lan, wan or local. Default: lan.", valueName: "PROFILE"))
    var serfProfile: String?
    @Option(name: .customLong("max-skew"), help: ArgumentHelp("Refuse records this many seconds ahead of the local clock. Default: 30.", valueName: "SECONDS"))
    var maxSkew: Double?
    @Option(name: .customLong("history-versions"), help: ArgumentHelp(
        "Earlier versions of each key kept for `kvgossip log` (0: none). Default: \(HistoryBounds.default.versionsPerKey).", valueName: "N"))
    var historyVersions: Int?
    @Option(name: .customLong("history-bytes"), help: ArgumentHelp(
        "Bytes all earlier versions together may take; the oldest go first. Default: \(HistoryBounds.default.totalBytes) (64 MiB).", valueName: "BYTES"))
    var historyBytes: Int?
    @Option(help: ArgumentHelp(
        "When systemd hears READY=1: mounted (the mount and sockets answer; values read as unsynced until the first reconciliation) or synced (also after it). Default: mounted.",
        valueName: "WHEN"))
    var readiness: String?
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical. Default: info.") var logLevel: String?

    func validate() throws {
        if noSerf && (serfSpawn || serf != nil) { throw ValidationError("--no-serf cannot be combined with --serf or --serf-spawn") }
    }

    /// The flags as settings (unset flags are nil so the file can fill them).
    var flagSettings: AgentSettings {
        AgentSettings(
            data: data, root: root, key: key, mount: mount, control: control, controlListen: controlListen, metricsListen: metricsListen, listen: listen,
            peers: peer, name: name, syncInterval: syncInterval, clusterSecret: clusterSecret, logLevel: logLevel, serf: serf,
            serfSpawn: noSerf ? false : (serfSpawn ? true : nil), join: join, serfBind: serfBind, serfRPC: serfRPC,
            serfProfile: serfProfile, mountPageCache: mountPageCache ? true : nil, maxSkewSeconds: maxSkew,
            historyVersions: historyVersions, historyBytes: historyBytes, readiness: readiness)
    }

    func effectiveSettings() throws -> AgentSettings {
        var settings = AgentSettings.defaults
        if let config { settings = settings.overridden(by: try AgentSettings.load(config)) }
        return settings.overridden(by: flagSettings)
    }

    /// The exit status for a data directory this release must not open (EX_CONFIG); the unit does
    /// not restart on it (RestartPreventExitStatus=), since a restart cannot help.
    static let refusedDataExitCode: Int32 = 78

    func run() async throws {
        // glibc gives threads malloc arenas of their own (up to 8 per core), and each keeps what it
        // freed; the mount's 16 FUSE workers alone made the heap grow by 48 MiB over 5,000 reads of
        // a 50,000-key tree, 8 MiB with two arenas (Docs/filesystem.md §Memory). Set before the
        // agent starts its threads, so none has an arena of its own.
        _ = mallopt(M_ARENA_MAX, 2)
        let settings = try effectiveSettings()
        var problems = settings.problems()
        if checkConfig {
            // A data directory a newer release wrote: the package's postinst runs --check-config, so
            // a downgrade stops here (Docs/operations.md §Upgrades and downgrades). An agent that
            // starts on one is refused where the store opens (AgentLauncher).
            if let data = settings.data, let refusal = try Store.schemaProblem(directory: data) { problems.append("data: \(refusal)") }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            // Printed as given, even a number JSON cannot hold: the problems below name it.
            encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            print(String(decoding: try encoder.encode(settings), as: UTF8.self))
            if problems.isEmpty {
                print("configuration OK")
                return
            }
            for p in problems { FileHandle.standardError.write(Data("kvgossip: \(p)\n".utf8)) }
            throw ExitCode(1)
        }
        if !problems.isEmpty { throw CLIError("invalid settings:\n  " + problems.joined(separator: "\n  ")) }
        try await AgentLauncher(settings: settings).run()
    }
}
