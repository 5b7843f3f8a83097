import Foundation
import KVGossipCore
import KVGossipNode
import KVGossipStore
import Logging
import Synchronization

/// A peer as the engine knows it: a name for logs and a sync address.
public struct GossipPeer: Sendable, Hashable {
    public let name: String
    public let address: PeerAddress

    public init(name: String, address: PeerAddress) {
        self.name = name
        self.address = address
    }
}

/// What the engine remembers about a peer, for `status`.
public struct PeerRecord: Sendable {
    public var peer: GossipPeer
    public var lastSync: Date?
    public var lastError: String?
    /// Whether the peer's tree hash equalled ours at the end of the last session.
    public var agreed: Bool?
}

/// Keeps this node converging with its peers (Docs/contract.md §Anti-entropy): full sessions when asked, on
/// start, when a member joins and periodically with a random peer; pushes of fresh records to a few peers. It
/// decides when to talk; the session logic is `SyncInitiator`/`SyncResponder` in the core.
public actor GossipEngine {
    public struct Options: Sendable {
        public var nodeName: String
        public var syncPort: UInt16
        public var staticPeers: [PeerAddress] = []
        /// Mean period of the anti-entropy round with one random peer (±20 % jitter).
        public var interval: Duration = .seconds(30)
        /// Peers each fresh record is pushed to.
        public var fanout = 3
        public var transport = SyncTransportOptions()

        public init(nodeName: String, syncPort: UInt16) {
            self.nodeName = nodeName
            self.syncPort = syncPort
        }
    }

    public nonisolated let node: Node
    public nonisolated let options: Options
    let logger: Logger
    private var members: [String: GossipPeer] = [:]
    private var records: [PeerAddress: PeerRecord] = [:]
    private var inFlight: Set<PeerAddress> = []
    /// Sessions this node started and pushes to one peer, by result ("ok", "failed"), for metrics.
    public private(set) var sessionResults: [String: Int] = [:]
    public private(set) var pushResults: [String: Int] = [:]
    /// Digests accepted from a peer, so a push does not go straight back to where it came from.
    /// Which peer each record received lately came from (by record digest), so pushing it on
    /// skips that peer. Written by sessions before they apply, read by `runPush`.
    private let origins = Mutex<[Hash256: String]>([:])
    /// Node names of static peers, learned from their hellos (static peers are configured by
    /// address only); origins name peers by node name.
    private let learnedNames = Mutex<[PeerAddress: String]>([:])
    private var pendingPush: [Key: Hash256] = [:]
    private var repairs: Set<PeerAddress> = []
    /// The peer list as text, readable without awaiting the actor (the mount's `peers` xattr).
    private let peerSnapshot = Mutex<[String]>([])

    public init(node: Node, options: Options, logger: Logger) {
        self.node = node
        self.options = options
        self.logger = logger
        peerSnapshot.withLock { $0 = options.staticPeers.map(\.description) }
    }

    /// `name address` per known peer, one line each.
    public nonisolated var peerLines: [String] { peerSnapshot.withLock { $0 } }

    /// The local state a session uses; records are remembered with their origin before they are
    /// applied. `remoteHost`: the answering side's view of the peer's IP, to learn which static
    /// peer address a name belongs to.
    public nonisolated func syncState(remoteHost: String? = nil) -> StoreSyncState {
        StoreSyncState(
            node: node,
            onReceiving: { [weak self] records, peer in
                self?.origins.withLock { map in
                    // Only records between apply and the push follower stay here; this bound is a
                    // backstop against a follower that stopped.
                    if map.count > 100_000 { map.removeAll() }
                    for r in records { map[r.digest] = peer }
                }
            },
            onNotAccepted: { [weak self] digests in
                self?.origins.withLock { map in for d in digests { map.removeValue(forKey: d) } }
            },
            onGreeted: { [weak self] hello in
                guard let remoteHost else { return }
                self?.learnName(hello.nodeName, host: remoteHost, syncPort: hello.syncPort)
            })
    }

    /// A responder for an incoming connection from `remoteHost`.
    public nonisolated func makeResponder(remoteHost: String?) -> SyncResponder {
        SyncResponder(state: syncState(remoteHost: remoteHost), localName: options.nodeName, syncPort: options.syncPort, limits: .default)
    }

    // MARK: Peers

    /// Every peer known now: static ones and live members.
    public var peers: [GossipPeer] {
        var all = Array(members.values)
        let names = learnedNames.withLock { $0 }
        for address in options.staticPeers where !all.contains(where: { $0.address == address }) {
            all.append(GossipPeer(name: names[address] ?? address.description, address: address))
        }
        return all
    }

    /// Replaces the live membership (from Serf); syncs with members seen for the first time.
    public func setMembers(_ live: [GossipPeer], syncWithNew: Bool) {
        let known = Set(members.keys)
        members = Dictionary(live.map { ($0.name, $0) }, uniquingKeysWith: { $1 })
        refreshPeerLines()
        guard syncWithNew else { return }
        for peer in live where !known.contains(peer.name) {
            logger.info("member joined; syncing", metadata: ["peer": "\(peer.name)", "address": "\(peer.address)"])
            Task { try? await self.sync(with: peer.address, reason: "member joined") }
        }
    }

    /// The `name address` lines behind `peerLines` (the mount root's `peers` attribute).
    private func refreshPeerLines() {
        let lines = peers.map { $0.name == $0.address.description ? $0.name : "\($0.name) \($0.address)" }.sorted()
        peerSnapshot.withLock { $0 = lines }
    }

    /// Names a static peer from its hello. The answering side sees the connection's source IP; an
    /// IPv4 peer reaching a dual-stack listener shows as `::ffff:a.b.c.d`, which names the same host.
    nonisolated func learnName(_ name: String, host: String, syncPort: UInt16) {
        guard syncPort != 0 else { return }
        let plain = host.hasPrefix("::ffff:") && host.contains(".") ? String(host.dropFirst(7)) : host
        let address = PeerAddress(host: plain, port: Int(syncPort))
        // Only configured addresses are kept: members have Serf's names, and anyone can connect.
        guard options.staticPeers.contains(address) else { return }
        let isNew = learnedNames.withLock { names -> Bool in
            defer { names[address] = name }
            return names[address] != name
        }
        if isNew { Task { await self.refreshPeerLines() } }
    }

    public func peerRecords() -> [PeerRecord] {
        peers.map { peer in
            var record = records[peer.address] ?? PeerRecord(peer: peer)
            record.peer = peer  // a static peer's name may have been learned since
            return record
        }
    }

    // MARK: Sessions

    /// One full reconciliation with `address`. Concurrent calls for the same peer share nothing:
    /// the second returns at once with an empty report.
    @discardableResult
    public func sync(with address: PeerAddress, reason: String) async throws -> SyncReport {
        guard inFlight.insert(address).inserted else { return SyncReport() }
        defer { inFlight.remove(address) }
        var initiator = SyncInitiator(state: syncState(), localName: options.nodeName, syncPort: options.syncPort)
        let peer = members.values.first { $0.address == address } ?? GossipPeer(name: address.description, address: address)
        var record = records[address] ?? PeerRecord(peer: peer)
        let pendingAtStart = pendingPush
        do {
            let opening = try initiator.start()
            let stats = try await SyncTransport.dial(address, driver: &initiator, opening: opening, options: options.transport)
            let report = initiator.report
            if !report.peer.isEmpty, report.peer != "?" { learnName(report.peer, host: address.host, syncPort: UInt16(address.port)) }
            sessionResults["ok", default: 0] += 1
            record.lastSync = Date()
            record.lastError = nil
            record.agreed = true
            records[address] = record
            node.setDefaultState(.synced)
            if !report.alreadyEqual {
                logger.info("synced", metadata: [
                    "peer": "\(report.peer)", "reason": "\(reason)", "differences": "\(report.recordDifferences)",
                    "sent": "\(report.recordsSent)", "received": "\(report.recordsReceived)",
                    "revocations": "\(report.revocationsSent)/\(report.revocationsReceived)",
                    "refused": "\(report.refusedByPeer.values.reduce(0, +))", "bytes": "\(stats.bytesSent + stats.bytesReceived)",
                ])
            }
            clearPendingPush(pendingAtStart)
            return report
        } catch {
            sessionResults["failed", default: 0] += 1
            record.lastError = "\(error)"
            record.agreed = false
            records[address] = record
            logger.warning("sync failed", metadata: ["peer": "\(address)", "reason": "\(reason)", "error": "\(error)"])
            throw error
        }
    }

    /// Syncs with every known peer (at start, and for `sync` without a peer).
    public func syncAll(reason: String) async {
        await withTaskGroup(of: Void.self) { group in
            for peer in peers {
                group.addTask { _ = try? await self.sync(with: peer.address, reason: reason) }
            }
        }
    }

    /// The periodic anti-entropy round, until cancelled.
    public func runPeriodic() async {
        while !Task.isCancelled {
            let base = Double(options.interval.components.seconds) + Double(options.interval.components.attoseconds) / 1e18
            let jittered = base * Double.random(in: 0.8...1.2)
            try? await Task.sleep(for: .milliseconds(Int(jittered * 1000)))
            if Task.isCancelled { return }
            if let peer = peers.randomElement() {
                _ = try? await sync(with: peer.address, reason: "periodic")
            }
        }
    }

    // MARK: Push

    /// Follows committed changes and pushes each new record to a few peers, until cancelled.
    public func runPush() async {
        let changes = node.store.changes()
        for await change in changes {
            guard case .record(let record, _) = change else { continue }
            let origin = origins.withLock { $0.removeValue(forKey: record.digest) }
            let targets = peers.filter { $0.name != origin && $0.address.description != origin }.shuffled().prefix(options.fanout)
            if origin == nil, !targets.isEmpty {
                pendingPush[record.key] = record.digest
                node.setState(.pendingPush, for: record.key)
            }
            for peer in targets {
                Task { await self.push([record], to: peer) }
            }
        }
    }

    func push(_ batch: [Record], to peer: GossipPeer) async {
        var pusher = SyncPusher(state: syncState(), localName: options.nodeName, syncPort: options.syncPort, records: batch)
        do {
            let opening = try pusher.start()
            _ = try await SyncTransport.dial(peer.address, driver: &pusher, opening: opening, options: options.transport)
            for (record, result) in zip(batch, pusher.results) where result.code != .refused {
                acknowledge(record)
            }
            pushResults["ok", default: 0] += 1
        } catch {
            pushResults["failed", default: 0] += 1
            logger.debug("push failed; a repair session follows", metadata: ["peer": "\(peer.name)", "error": "\(error)"])
            scheduleRepair(with: peer)
        }
    }

    /// A push that did not arrive is repaired by a full session with that peer soon after,
    /// rather than waiting for the periodic round. One pending repair per peer.
    private func scheduleRepair(with peer: GossipPeer) {
        guard repairs.insert(peer.address).inserted else { return }
        Task {
            try? await Task.sleep(for: .seconds(1))
            await self.finishRepair(peer)
        }
    }

    /// A session already running with the peer may have started before the record existed, so
    /// the repair waits for it to end (up to 30 s) instead of counting on it.
    private func finishRepair(_ peer: GossipPeer) async {
        for _ in 0..<150 where inFlight.contains(peer.address) {
            try? await Task.sleep(for: .milliseconds(200))
        }
        repairs.remove(peer.address)
        _ = try? await sync(with: peer.address, reason: "repair after a failed push")
    }

    private func acknowledge(_ record: Record) {
        guard pendingPush[record.key] == record.digest else { return }
        pendingPush[record.key] = nil
        node.setState(.synced, for: record.key)
    }

    /// A completed full session leaves the peer holding at least the versions we had when it began.
    private func clearPendingPush(_ atStart: [Key: Hash256]) {
        for (key, digest) in atStart where pendingPush[key] == digest {
            pendingPush[key] = nil
            node.setState(.synced, for: key)
        }
    }
}
