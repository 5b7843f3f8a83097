import Foundation
import KVGossipControl
import KVGossipCore
import KVGossipNode
import KVGossipStore
import KVGossipSync
import Logging

/// Turns validated settings into a running agent: logging, keys, store, node, gossip, runtime.
struct AgentLauncher {
    let settings: AgentSettings

    func run() async throws {
        let level = Logger.Level(rawValue: settings.logLevel!) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "kvgossip.agent")
        logger.logLevel = level

        let data = settings.data!
        let rootKey = try parsePublicKey(settings.root!, option: "root")
        let nodeKey = try loadOrCreateNodeKey(data: data, logger: logger)
        var limits = Limits()
        limits.maxSkewMs = UInt64(settings.maxSkewSeconds! * 1000)
        let store: Store
        do { store = try Store(directory: data, root: rootKey, limits: limits) } catch { throw CLIError("cannot open the store in \(data): \(error)") }
        let staticPeers = (settings.peers ?? []).compactMap(PeerAddress.init(parsing:))
        let node = try Node(store: store, key: nodeKey, peersExpected: !staticPeers.isEmpty)
        logger.info("agent starting", metadata: [
            "node": "\(nodeKey.publicKey.text)", "fingerprint": "\(nodeKey.publicKey.fingerprint)",
            "root": "\(rootKey.fingerprint)", "data": "\(data)", "treehash": "\(store.treeHash.hex.prefix(16))",
        ])
        let listenAddress = PeerAddress(parsing: settings.listen!)!
        var gossip = GossipEngine.Options(nodeName: settings.name ?? ProcessInfo.processInfo.hostName, syncPort: UInt16(listenAddress.port))
        gossip.staticPeers = staticPeers
        gossip.interval = .milliseconds(Int(settings.syncInterval! * 1000))
        gossip.transport.limits = limits
        if let secret = settings.clusterSecret {
            gossip.transport.secret = try Files.clusterSecret(secret)
            logger.info("sync connections are encrypted with the cluster secret")
        }
        if staticPeers.isEmpty {
            logger.notice("running without Serf and without static peers: this node syncs only when asked (kvgossip sync --peer)")
        }
        let engine = GossipEngine(node: node, options: gossip, logger: logger)
        let runtime = AgentRuntime(node: node, engine: engine, logger: logger, mountpoint: settings.mount)
        try await runtime.run(
            controlPath: settings.control!, controlListen: settings.controlListen.map(ControlEndpoint.init(parsing:)),
            syncListen: listenAddress)
        logger.info("agent stopped")
    }

    private func loadOrCreateNodeKey(data: String, logger: Logger) throws -> SigningKey {
        if let key = settings.key { return try Files.signingKey(key) }
        let path = URL(fileURLWithPath: data).appendingPathComponent("node.key").path
        if FileManager.default.fileExists(atPath: path) { return try Files.signingKey(path) }
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let fresh = SigningKey.generate()
        try Files.create(path, contents: SecretKeyFile.render(fresh), mode: 0o600)
        logger.notice("generated a node key", metadata: ["file": "\(path)", "node": "\(fresh.publicKey.text)"])
        return fresh
    }
}
