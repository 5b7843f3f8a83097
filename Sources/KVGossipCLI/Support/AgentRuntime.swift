import Dispatch
import Foundation
import KVGossipControl
import KVGossipMount
import KVGossipNode
import KVGossipSerf
import KVGossipSync
import Logging
import NIOCore
import Synchronization
import KVGossipCore

/// Runs the agent's long-lived parts side by side and stops them all on SIGTERM or SIGINT.
struct AgentRuntime: Sendable {
    let node: Node
    let engine: GossipEngine
    let logger: Logger
    let mountpoint: String?
    let serfGossip: SerfGossip?
    let embeddedSerf: EmbeddedSerf?
    let mount: Mount?
    /// Where `/metrics` is served over HTTP, if anywhere.
    let metricsListen: PeerAddress?
    /// Risks found at start, repeated in `status`.
    let warnings: [String]
    let controlLimits: ControlLimits
    /// READY=1 waits for the first completed reconciliation too (`readiness: synced`).
    let readyWhenSynced: Bool

    /// `stop`: the process's handler of SIGTERM and SIGINT, installed before the agent took its
    /// data directory (a signal during the start is honoured once the start is done).
    func run(controlPath: String, controlListen: ControlEndpoint?, syncListen: PeerAddress, stop: ShutdownSignal) async throws {
        let engine = self.engine
        let handler = ControlHandler(
            node: node, mountpoint: mountpoint, nodeName: engine.options.nodeName, limits: controlLimits,
            peers: { await AgentRuntime.peerInfo(engine) },
            health: { [self] in health },
            sync: { peer in try await AgentRuntime.sync(engine, peer: peer) },
            peerNames: { engine.peerNames })
        let server = ControlServer(handler: handler, logger: logger)
        let node = self.node
        let notify = SystemdNotify()
        let logger = self.logger
        let readiness = Readiness(parts: (controlListen == nil ? 2 : 3) + (readyWhenSynced ? 1 : 0)) {
            notify.send("READY=1\nSTATUS=serving; tree hash \(node.store.treeHash.hex.prefix(16))")
            logger.info("agent ready")
        }
        let synced = readyWhenSynced ? Readiness.partWhenSynced(readiness, node: node, engine: engine, logger: logger) : nil
        defer { synced?.cancel() }
        do {
            try await serve(group: (server, engine, stop, notify, readiness), controlPath: controlPath, controlListen: controlListen, syncListen: syncListen)
        } catch {
            await cleanUp(server)
            throw error
        }
        await cleanUp(server)
    }

    private func cleanUp(_ server: ControlServer) async {
        // Unmount first: no new writes while the rest shuts down.
        mount?.stop()
        // Only the socket this agent put there: an agent that refused to start (another one
        // serves the path, or a file is in the way) leaves the path as it found it.
        server.removeSocket()
        await serfGossip?.session.close()
        // A graceful leave, so the other members see "left" at once rather than "failed" later.
        await embeddedSerf?.stop(gracefully: true)
        // Last, once the mount, the servers and the engine's loops have stopped: the writer closes
        // after every other connection, so SQLite copies the log into the database file and
        // removes it (a session still under way fails with "the store is closed").
        do {
            try node.store.close()
        } catch {
            logger.warning("the store did not close cleanly; the next start replays its log", metadata: ["error": "\(error)"])
        }
    }

    private func serve(
        group parts: (ControlServer, GossipEngine, ShutdownSignal, SystemdNotify, Readiness),
        controlPath: String, controlListen: ControlEndpoint?, syncListen: PeerAddress
    ) async throws {
        let (server, engine, stop, notify, readiness) = parts
        let logger = self.logger
        let serfGossip = self.serfGossip
        let (node, mount, metricsListen) = (self.node, self.mount, self.metricsListen)
        let startTime = Date().timeIntervalSince1970
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await Self.listening("listen", syncListen) { try await engine.serve(host: syncListen.host, port: syncListen.port) { _ in readiness.partReady() } }
            }
            group.addTask { await engine.run() }
            // With Serf, the first sessions wait for the members and the start-up query.
            if let serfGossip { group.addTask { await serfGossip.run() } } else { engine.start() }
            group.addTask { try await server.serveUnix(path: controlPath) { readiness.partReady() } }
            if case .tcp(let host, let port) = controlListen {
                group.addTask {
                    try await Self.listening("controlListen", PeerAddress(host: host, port: port)) {
                        try await server.serveTCP(host: host, port: port) { _ in readiness.partReady() }
                    }
                }
            }
            if let metricsListen {
                let metrics = MetricsServer(logger: logger) { [node, engine, mount, startTime, self] in
                    await AgentRuntime.metrics(node: node, engine: engine, mount: mount, startTime: startTime, problems: health.problems)
                }
                group.addTask { try await Self.listening("metricsListen", metricsListen) { try await metrics.serve(host: metricsListen.host, port: metricsListen.port) } }
            }
            group.addTask {
                let signal = await stop.wait()
                notify.send("STOPPING=1")
                logger.notice("shutting down", metadata: ["signal": "\(signal)"])
            }
            // A signal, or a server that failed, stops the others (the start-up sync may end first).
            do {
                while let _ = try await group.next() {
                    if stop.received { break }
                }
            } catch {
                group.cancelAll()
                throw error
            }
            group.cancelAll()
        }
    }

    /// Runs a server on `address`; a socket error says which setting's address failed, in the
    /// system's words ("cannot listen on 0.0.0.0:7947 (listen): Address already in use"), not as
    /// NIO's description of the call that failed.
    static func listening(_ setting: String, _ address: PeerAddress, _ serve: () async throws -> Void) async throws {
        do { try await serve() } catch let error as IOError {
            throw CLIError("cannot listen on \(address) (\(setting)): \(String(cString: strerror(error.errnoCode)))")
        }
    }

    /// What needs an operator now, for `status` and the metrics.
    var health: AgentHealth {
        AgentHealth(
            problems: node.problems + [embeddedSerf?.failure, mount?.problem].compactMap { $0 }, mountLosses: mount?.losses ?? 0,
            warnings: warnings)
    }

    static func peerInfo(_ engine: GossipEngine) async -> [PeerInfo] {
        engine.peers.map { p in
            PeerInfo(
                name: p.name, address: p.address.host, syncPort: p.address.port,
                lastSync: p.lastSyncMs.map { HLC(physicalMs: $0).rfc3339 }, treeHashAgrees: p.agreed)
        }
    }

    static func sync(_ engine: GossipEngine, peer: String?) async throws -> [SyncSummary] {
        let targets: [PeerAddress]
        if let peer {
            guard let address = PeerAddress(parsing: peer) else {
                throw ControlError(reason: "bad-request", message: "expected HOST:PORT, got \(peer)")
            }
            targets = [address]
        } else {
            targets = engine.peers.map(\.address)
            if targets.isEmpty { throw ControlError(reason: "unavailable", message: "no peers known; give one with --peer HOST:PORT") }
        }
        var out: [SyncSummary] = []
        for address in targets {
            do {
                let r = try await engine.syncNow(with: address)
                out.append(SyncSummary(
                    peer: r.peer.isEmpty ? address.description : "\(r.peer) (\(address))", ok: true, alreadyEqual: r.alreadyEqual,
                    differences: r.recordDifferences + r.revocationDifferences, sent: r.recordsSent + r.revocationsSent,
                    received: r.recordsReceived + r.revocationsReceived, refused: r.refusedByPeer.values.reduce(0, +), error: nil))
            } catch {
                out.append(SyncSummary(peer: address.description, ok: false, alreadyEqual: false, differences: 0, sent: 0, received: 0, refused: 0, error: "\(error)"))
            }
        }
        return out
    }
}
