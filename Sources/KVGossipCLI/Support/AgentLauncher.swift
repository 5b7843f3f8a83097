import ArgumentParser
import Foundation
import KVGossipControl
import KVGossipCore
import KVGossipMount
import KVGossipNode
import KVGossipSerf
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
        // From here on SIGTERM and SIGINT stop the agent cleanly, also while it starts (a large
        // tree takes seconds to mount): the runtime sees the signal as soon as it begins.
        let stop = ShutdownSignal()
        // Before anything touches the store, the mount or the Serf agent's pid file.
        let lock = try DataDirectoryLock(directory: data, controlSocket: settings.control!)
        defer { withExtendedLifetime(lock) {} }
        let rootKey = try parsePublicKey(settings.root!, option: "root")
        var limits = Limits()
        limits.maxSkewMs = UInt64(settings.maxSkewSeconds! * 1000)
        let store: Store
        do {
            store = try Store(
                directory: data, root: rootKey, limits: limits, history: settings.historyBounds, logReserveBytes: Store.agentLogReserveBytes)
        } catch let refusal as StoreError {
            guard case .newerSchema = refusal else { throw CLIError("cannot open the store in \(data): \(refusal)") }
            // A newer release wrote it: a restart cannot help, and the unit does not restart on 78.
            FileHandle.standardError.write(Data("kvgossip: \(refusal)\n".utf8))
            throw ExitCode(AgentCommand.refusedDataExitCode)
        } catch {
            throw CLIError("cannot open the store in \(data): \(error)")
        }
        // After the store opened: a data directory the agent cannot use gets no node key written.
        let nodeKey = try loadOrCreateNodeKey(data: data, logger: logger)
        let nodeName = settings.name ?? NodeName.derived(hostName: ProcessInfo.processInfo.hostName, nodeKey: nodeKey.publicKey)
        let rootKeyWarning = Self.rootKeyWarning(nodeKey: nodeKey.publicKey, root: rootKey)
        if let rootKeyWarning { logger.warning("\(rootKeyWarning)") }
        let staticPeers = (settings.peers ?? []).compactMap(PeerAddress.init(parsing:))
        let serfMode = SerfMode(settings)
        let node = try Node(store: store, key: nodeKey, peersExpected: !staticPeers.isEmpty || serfMode != .off)
        logger.info("agent starting", metadata: [
            "version": "\(KVGossipVersion.release)", "name": "\(nodeName)", "node": "\(nodeKey.publicKey.text)", "fingerprint": "\(nodeKey.publicKey.fingerprint)",
            "root": "\(rootKey.fingerprint)", "data": "\(data)", "treehash": "\(store.treeHash.hex.prefix(16))",
        ])
        let listenAddress = PeerAddress(parsing: settings.listen!)!
        var gossip = GossipEngine.Options(nodeName: nodeName, syncPort: UInt16(listenAddress.port))
        gossip.staticPeers = staticPeers
        gossip.expectsPeers = !staticPeers.isEmpty || serfMode != .off
        gossip.gossip.antiEntropyIntervalMs = UInt64(settings.syncInterval! * 1000)
        gossip.links.limits = limits
        let secret = try settings.clusterSecret.map(Files.clusterSecret)
        if let secret {
            gossip.links.secret = secret
            logger.info("sync connections (and a spawned Serf's gossip) are encrypted with the cluster secret")
        }
        let engine = GossipEngine(node: node, options: gossip, logger: logger)
        let serf = try await startSerf(serfMode, nodeName: nodeName, syncPort: listenAddress.port, secret: secret, logger: logger)
        if serf == nil && staticPeers.isEmpty {
            logger.notice("running without Serf and without static peers: this node syncs only when asked (kvgossip sync --peer)")
        } else if serf == nil {
            logger.notice("running without Serf: static peers only", metadata: ["peers": "\(staticPeers.map(\.description))"])
        }
        let gossipOverSerf = serf.map {
            SerfGossip(session: $0.session, engine: engine, nodeName: nodeName, syncPort: UInt16(listenAddress.port), logger: logger)
        }
        let mount = try startMount(node: node, engine: engine, logger: logger)
        let runtime = AgentRuntime(
            node: node, engine: engine, logger: logger, mountpoint: settings.mount, serfGossip: gossipOverSerf,
            embeddedSerf: serf?.embedded, mount: mount, metricsListen: settings.metricsListen.flatMap(PeerAddress.init(parsing:)),
            warnings: [
                rootKeyWarning, serf?.embedded == nil ? nil : Self.gossipWarning(secret: secret, bind: PeerAddress(parsing: settings.serfBind!)!),
                mount?.warning,
            ].compactMap { $0 },
            controlLimits: settings.controlLimits, readyWhenSynced: settings.readiness == "synced")
        try await runtime.run(
            controlPath: settings.control!, controlListen: settings.controlListen.map(ControlEndpoint.init(parsing:)),
            syncListen: listenAddress, stop: stop)
        logger.info("agent stopped")
    }

    /// Mounts the tree (recovering a stale mount first); returns once the mount answers.
    private func startMount(node: Node, engine: GossipEngine, logger: Logger) throws -> Mount? {
        guard let path = settings.mount else { return nil }
        // The mount creates the directory itself, after clearing a stale mount there: creating it
        // first would fail on a dead mount (stat says ENOTCONN, mkdir says EEXIST).
        var options = MountOptions()
        options.uid = settings.mountUID ?? 0
        options.gid = settings.mountGID ?? 0
        options.allowOther = settings.mountAllowOther ?? true
        if let patterns = settings.scratchPatterns { options.scratchPatterns = patterns }
        options.readerPageCache = settings.mountPageCache ?? false
        options.peers = { engine.peerLines }
        let mount = Mount(node: node, mountpoint: path, options: options, logger: logger)
        do { try mount.start() } catch { throw CLIError("cannot mount the tree at \(path): \(Files.reason(error))") }
        logger.info("tree mounted", metadata: ["mount": "\(path)"])
        return mount
    }

    enum SerfMode: Equatable {
        case off
        case external(String)
        case spawn(executable: String)

        init(_ settings: AgentSettings) {
            if settings.serfSpawn == false {
                self = .off
            } else if let address = settings.serf {
                self = .external(address)
            } else if let executable = EmbeddedSerfConfiguration.findExecutable() {
                self = .spawn(executable: executable)
            } else {
                self = .off
            }
        }
    }

    /// Starts (or finds) Serf and opens the RPC session the gossip glue follows.
    private func startSerf(
        _ mode: SerfMode, nodeName: String, syncPort: Int, secret: ClusterSecret?, logger: Logger
    ) async throws -> (session: SerfSession, embedded: EmbeddedSerf?)? {
        switch mode {
        case .off:
            if settings.serfSpawn != false { logger.notice("serf is not on PATH; running with static peers only") }
            return nil
        case .external(let text):
            guard let address = SerfRPCAddress(parsing: text) else { throw CLIError("serf: expected HOST:PORT, got \(text)") }
            logger.info("using the Serf agent at \(address)")
            return (SerfSession(.init(address: address, streamType: Self.streamType)), nil)
        case .spawn(let executable):
            let bind = PeerAddress(parsing: settings.serfBind!)!
            let rpc = PeerAddress(parsing: settings.serfRPC!)!
            let config = EmbeddedSerfConfiguration(
                executable: executable, nodeName: nodeName, directory: URL(fileURLWithPath: settings.data!).appendingPathComponent("serf").path,
                bindHost: bind.host, bindPort: bind.port, rpcPort: rpc.port, syncPort: syncPort,
                tags: [Membership.defaultTag: String(syncPort)], join: settings.join ?? [],
                profile: settings.serfProfile, encryptKey: secret.map { Data($0.serfKey).base64EncodedString() },
                // Without it, any local user could reach the RPC and, say, change our `kvg` tag to
                // send the cluster elsewhere. Fresh at every start, kept only in the 0600 secrets file.
                rpcAuthKey: Base64URL.encode(secureRandomBytes(24)))
            let embedded = EmbeddedSerf(config)
            let address: SerfRPCAddress
            do { address = try await embedded.start() } catch { throw CLIError("could not start serf: \(error)") }
            logger.info("spawned a Serf agent", metadata: [
                "bind": "\(bind)", "rpc": "\(address)", "join": "\(settings.join ?? [])", "pid": "\(embedded.pid.map(String.init) ?? "?")",
            ])
            if let warning = Self.gossipWarning(secret: secret, bind: bind) { logger.warning("\(warning)") }
            return (SerfSession(.init(address: address, authKey: config.rpcAuthKey, streamType: Self.streamType)), embedded)
        }
    }

    /// Said in the log and in `status` when a spawned Serf gossips in the clear beyond this host.
    static func gossipWarning(secret: ClusterSecret?, bind: PeerAddress) -> String? {
        guard secret == nil, !isLoopback(bind.host) else { return nil }
        return "Serf gossip is not encrypted and listens on \(bind): anyone who reaches it can join the membership and see members (configure a cluster secret)"
    }

    /// Said in the log and in `status` when the node key is the cluster's root key, which can sign
    /// for any key and grant anything: a host holding it loses the cluster if it is taken.
    static func rootKeyWarning(nodeKey: PublicKey, root: PublicKey) -> String? {
        guard nodeKey == root else { return nil }
        return "this node's key is the cluster's root key, which can sign any key and grant anything: give each host a node key of its own and a grant (kvgossip grant --to)"
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    static let streamType = SerfEventFilter.combine(SerfEventFilter.memberEvents, SerfEventFilter.queries(named: TreeHashAnnouncement.queryName))

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
