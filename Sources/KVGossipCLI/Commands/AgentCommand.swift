import ArgumentParser
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
            The agent keeps this host's copy of the tree in DIR (SQLite), serves the control API on
            a Unix socket, and with --mount shows the tree as files. Its node key is --key, or
            DIR/node.key, generated on first start (its public key is logged and shown by
            `kvgossip status`; give it grants with `kvgossip grants add`). SIGTERM or SIGINT unmount
            cleanly and stop.
            """)

    @Option(help: ArgumentHelp("Data directory.", valueName: "DIR")) var data = "/var/lib/kvgossip"
    @Option(help: ArgumentHelp("The cluster's root public key (ed25519:…).", valueName: "PUBKEY")) var root: String
    @Option(help: ArgumentHelp("Node secret key file. Default: DIR/node.key (created if missing).", valueName: "FILE")) var key: String?
    @Option(help: ArgumentHelp("Mount the tree here.", valueName: "DIR")) var mount: String?
    @Option(help: ArgumentHelp("Control socket path.", valueName: "PATH")) var control = ControlEndpoint.defaultSocketPath
    @Option(name: .customLong("control-listen"), help: ArgumentHelp(
        "Also serve the control API on TCP for remote clients (reads and client-signed writes only).", valueName: "HOST:PORT"))
    var controlListen: String?
    @Option(help: ArgumentHelp("Serve sync sessions here (peers dial it).", valueName: "HOST:PORT")) var listen = "0.0.0.0:7947"
    @Option(help: ArgumentHelp("A static peer's sync address (repeatable), for hosts without Serf.", valueName: "HOST:PORT"))
    var peer: [String] = []
    @Option(help: ArgumentHelp("This node's name in logs and to peers. Default: the host name.", valueName: "NAME")) var name: String?
    @Option(name: .customLong("sync-interval"), help: ArgumentHelp("Mean seconds between anti-entropy rounds with a random peer.", valueName: "SECONDS"))
    var syncInterval = 30.0
    @Option(name: .customLong("cluster-secret"), help: ArgumentHelp(
        "Encrypt and authenticate sync connections with this secret (kvgossip keygen --cluster-secret).", valueName: "FILE"))
    var clusterSecret: String?
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.") var logLevel = "info"

    func validate() throws {
        _ = try parsePublicKey(root, option: "--root")
        if Logger.Level(rawValue: logLevel) == nil { throw ValidationError("--log-level: unknown level \(logLevel)") }
        if PeerAddress(parsing: listen) == nil { throw ValidationError("--listen: expected HOST:PORT, got \(listen)") }
        for p in peer where PeerAddress(parsing: p) == nil { throw ValidationError("--peer: expected HOST:PORT, got \(p)") }
        if !(syncInterval > 0) { throw ValidationError("--sync-interval must be positive") }
        if let controlListen, case .unix = ControlEndpoint(parsing: controlListen) {
            throw ValidationError("--control-listen: expected HOST:PORT, got \(controlListen)")
        }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "kvgossip.agent")
        logger.logLevel = level

        let rootKey = try parsePublicKey(root, option: "--root")
        let nodeKey = try loadOrCreateNodeKey(logger: logger)
        let store: Store
        do { store = try Store(directory: data, root: rootKey) } catch { throw CLIError("cannot open the store in \(data): \(error)") }
        let staticPeers = peer.compactMap(PeerAddress.init(parsing:))
        let node = try Node(store: store, key: nodeKey, peersExpected: !staticPeers.isEmpty)
        logger.info("agent starting", metadata: [
            "node": "\(nodeKey.publicKey.text)", "fingerprint": "\(nodeKey.publicKey.fingerprint)",
            "root": "\(rootKey.fingerprint)", "data": "\(data)", "treehash": "\(store.treeHash.hex.prefix(16))",
        ])
        let listenAddress = PeerAddress(parsing: listen)!
        var gossip = GossipEngine.Options(nodeName: name ?? ProcessInfo.processInfo.hostName, syncPort: UInt16(listenAddress.port))
        gossip.staticPeers = staticPeers
        gossip.interval = .milliseconds(Int(syncInterval * 1000))
        if let clusterSecret {
            gossip.transport.secret = try Files.clusterSecret(clusterSecret)
            logger.info("sync connections are encrypted with the cluster secret")
        }
        if staticPeers.isEmpty {
            logger.notice("running without Serf and without static peers: this node syncs only when asked (kvgossip sync --peer)")
        }
        let engine = GossipEngine(node: node, options: gossip, logger: logger)
        let runtime = AgentRuntime(node: node, engine: engine, logger: logger, mountpoint: mount)
        try await runtime.run(
            controlPath: control, controlListen: controlListen.map(ControlEndpoint.init(parsing:)), syncListen: listenAddress)
        logger.info("agent stopped")
    }

    private func loadOrCreateNodeKey(logger: Logger) throws -> SigningKey {
        if let key { return try Files.signingKey(key) }
        let path = URL(fileURLWithPath: data).appendingPathComponent("node.key").path
        if FileManager.default.fileExists(atPath: path) { return try Files.signingKey(path) }
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let fresh = SigningKey.generate()
        try Files.create(path, contents: SecretKeyFile.render(fresh), mode: 0o600)
        logger.notice("generated a node key", metadata: ["file": "\(path)", "node": "\(fresh.publicKey.text)"])
        return fresh
    }
}
