import Foundation
import KVGossipCore
import KVGossipNet
import KVGossipNode
import KVGossipStore
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The shell around `GossipInstance` (Docs/architecture.md §Gossip): it feeds the instance events
/// — committed records with their origins, members, finished sessions and pushes, announcements,
/// the clock — and carries out the directives it answers with: sessions and pushes over links,
/// announcements, key states for the node's readers. It decides nothing itself.
public final class GossipEngine: Sendable, KeyStateSource {
    public struct Options: Sendable {
        public var nodeName: String
        public var syncPort: UInt16
        public var staticPeers: [PeerAddress] = []
        public var gossip = GossipConfig()
        public var links = LinkOptions()
        /// Nil: a node configured with no peers at all (its keys are trivially synced).
        public var expectsPeers = true

        public init(nodeName: String, syncPort: UInt16) {
            self.nodeName = nodeName
            self.syncPort = syncPort
        }
    }

    public let node: Node
    public let options: Options
    let logger: Logger
    let refusals: RefusalLog
    private let instance: Mutex<GossipInstance>
    /// Wakes the clock loop (`run`) when an event brings its next tick nearer.
    private let clockWake = ClockDoorbell()
    let links = LinkTable()
    /// Connections to the sync listener still in their handshake.
    let handshakes: PendingHandshakes
    /// This running agent's id on links (see `LinkIdentity.instance`).
    let instanceID = secureRandomBytes(LinkIdentity.instanceBytes)
    /// Threads for the blocking half of sessions (store reads, signature checks, commits), so the
    /// cooperative pool stays free for the network, timers, Serf and the control API.
    let pool: NIOThreadPool
    /// The same threads as a task executor, for sessions the peers open.
    let storeThreads: StoreThreads

    public init(node: Node, options: Options, logger: Logger) {
        self.node = node
        self.options = options
        self.logger = logger
        refusals = RefusalLog(logger: logger)
        var seed: UInt64 = 0
        withUnsafeMutableBytes(of: &seed) { $0.copyBytes(from: secureRandomBytes(8)) }
        instance = Mutex(GossipInstance(config: options.gossip, expectsPeers: options.expectsPeers, seed: seed, name: options.nodeName))
        handshakes = PendingHandshakes(perSource: options.links.pendingPerSource, total: options.links.pendingTotal)
        pool = NIOThreadPool(numberOfThreads: 4)
        pool.start()
        storeThreads = StoreThreads(pool: pool)
        _ = instance.withLock { $0.setPeers(members: [], statics: options.staticPeers, nowMs: 0) }
        node.attach(keyStates: self)
    }

    // Not the synchronous shutdown: the last reference may go on one of the pool's own threads
    // (a session or a push's wait ends there), and a thread cannot wait for itself to exit.
    deinit { pool.shutdownGracefully { _ in } }

    // MARK: Key states (KeyStateSource)

    public var defaultKeyState: KeyState { instance.withLock { $0.keyStates.defaultState } }
    public func keyState(of key: Key) -> KeyState { instance.withLock { $0.keyStates.state(of: key) } }
    public func dirtyCounts(liveKeys: Int) -> [KeyState: Int] { instance.withLock { $0.keyStates.dirtyCounts(liveKeys: liveKeys) } }

    // MARK: Events in

    /// Live members (from Serf), by name and sync address; static peers stay.
    public func setMembers(_ members: [(name: String, address: PeerAddress)]) {
        handle { $0.setPeers(members: members, statics: options.staticPeers, nowMs: now) }
    }

    /// This node's name as Serf lists it, where it differs from `Options.nodeName` (an agent run
    /// by hand with a name of its own): the gossip places the node on its ring by it.
    public func setOwnName(_ name: String) {
        instance.withLock { $0.setOwnName(name) }
    }

    /// The agent is up: the first sessions (see `GossipInstance.start`).
    public func start(differing: [PeerAddress] = []) {
        handle { $0.start(differing: differing, nowMs: now) }
    }

    /// Reconciles with the peer at `address` because someone says it differs.
    public func reconcile(with address: PeerAddress, reason: String) {
        handle { $0.reconcile(with: address, reason: reason) }
    }

    /// Follows the store's commits and the clock until cancelled.
    public func run() async {
        // Commits come in on the committing thread as the store publishes them, so a fresh
        // record's pushes start at once instead of after a change-feed reader is scheduled.
        let observation = node.store.observeCommits { [weak self] changes in self?.committed(changes) }
        defer { observation.cancel() }
        while !Task.isCancelled {
            let wait = instance.withLock { instance -> UInt64 in
                let now = self.now
                let wake = instance.nextWakeMs ?? UInt64.max
                let wait = min(wake > now ? wake - now : 0, Self.longestSleepMs)
                if wait > 0 { clockWake.arm(deadlineMs: now + wait) }
                return wait
            }
            if wait > 0 { await clockWake.sleep(milliseconds: wait) }
            if Task.isCancelled { return }
            handle { $0.tick(nowMs: now) }
        }
    }

    /// The longest the clock loop sleeps without looking again, whatever its next tick: the
    /// instance's times are the wall clock's, which can be stepped.
    static let longestSleepMs: UInt64 = 5_000

    /// Feeds an event to the instance and carries out its directives; wakes the clock loop if
    /// the event brought its next tick nearer (`ClockDoorbell`).
    private func handle(fresh: [Key: Record] = [:], _ event: (inout GossipInstance) -> [GossipDirective]) {
        let (directives, next) = instance.withLock { instance in (event(&instance), instance.nextWakeMs) }
        if clockWake.mustRing(nextMs: next) { clockWake.ring() }
        execute(directives, fresh: fresh)
    }

    /// A batch the store committed (called on the committing thread: quick, and no store access).
    private func committed(_ changes: [StoreChange]) {
        var revoked = false
        // The records just committed, for the pushes they start: sent as they are instead of read
        // back from the store once per peer. (A newer commit of the same key meanwhile pushes too.)
        var fresh: [Key: Record] = [:]
        for case .record(let record, _, _) in changes { fresh[record.key] = record }
        for change in changes {
            switch change {
            case .record(let record, _, let origin):
                handle(fresh: fresh) { $0.committed(record.key, digest: record.digest, origin: origin, nowMs: now) }
            case .revocation:
                revoked = true
            case .unset:
                break
            }
        }
        if revoked { Task { self.dropLinksNoLongerAdmitted() } }
    }

    // MARK: Directives out

    /// `fresh`: records just committed, which a push of their keys sends without reading them.
    private func execute(_ directives: [GossipDirective], fresh: [Key: Record] = [:]) {
        for directive in directives {
            switch directive {
            case .startSession(let address, let reason):
                Task { await self.runSession(with: address, reason: reason) }
            case .push(let address, let keys):
                startPush(to: address, keys: keys, fresh: fresh)
            case .announce(let address):
                Task {
                    guard let link = try? await self.link(to: address) else { return }
                    link.announce(self.node.store.treeHash)
                }
            case .keyStates(let changes):
                node.publish(changes.map { .key($0.key, $0.value) })
            case .defaultState(let state):
                node.publish([.all(state)])
            }
        }
    }

    /// A full session the instance asked for; its end goes back as an event.
    private func runSession(with address: PeerAddress, reason: String) async {
        let outcome: SessionOutcome
        do {
            let report = try await session(with: address)
            outcome = SessionOutcome(completed: report.completedReconciliation, equalAtEnd: report.equalAtEnd)
            log(report, reason: reason)
        } catch {
            outcome = .failed("\(error)")
            logger.warning("sync failed", metadata: ["peer": "\(address)", "reason": "\(reason)", "error": "\(error)"])
        }
        handle { $0.sessionEnded(with: address, outcome, nowMs: now) }
    }

    /// One full session with the peer at `address` (dialing a link if there is none).
    public func session(with address: PeerAddress) async throws -> SyncReport {
        let link = try await self.link(to: address)
        var initiator = SyncInitiator(state: syncState(link), peer: link.peer.name, limits: options.links.syncLimits)
        let opening = try await pool.runIfActive { [initiator] in
            var i = initiator
            return (try i.start(), i)
        }
        initiator = opening.1
        let (id, inbox) = try link.openSession()
        try await SessionRunner.run(&initiator, opening: opening.0, first: nil, session: id, inbox: inbox, link: link, pool: pool)
        return initiator.report
    }

    /// `kvgossip sync`: a session now, outside the instance's schedule; a completed one counts.
    public func syncNow(with address: PeerAddress) async throws -> SyncReport {
        do {
            let report = try await session(with: address)
            handle { $0.noteSession(with: address, SessionOutcome(completed: report.completedReconciliation, equalAtEnd: report.equalAtEnd), nowMs: now) }
            log(report, reason: "requested")
            return report
        } catch {
            handle { $0.noteSession(with: address, .failed("\(error)"), nowMs: now) }
            throw error
        }
    }

    /// Keys a push reads where it is asked for rather than on the store's threads.
    static let inlineReads = 4

    /// A push the instance asked for. A push of a fresh write (a key or two) over an open link is
    /// read and sent right here, usually on the thread that committed the record: it leaves without
    /// waiting for a task to be scheduled, and its answer is taken where it arrives (`PushAnswer`).
    /// A push an answer just taken asked for (the next one queued for that peer) is on a link's
    /// event loop, which must not read the store: it is read and sent on a store thread. Other
    /// pushes (many keys, a link still to dial) run in a task, reading on the store's threads.
    private func startPush(to address: PeerAddress, keys: [Key], fresh: [Key: Record]) {
        guard keys.count <= Self.inlineReads, let link = links.openLink(to: address) else {
            Task { await self.runPush(to: address, keys: keys) }
            return
        }
        if keys.contains(where: { fresh[$0] == nil }), MultiThreadedEventLoopGroup.currentEventLoop != nil {
            pool.submit { state in
                guard case .active = state else { return }
                self.startPush(to: address, keys: keys, fresh: fresh)
            }
            return
        }
        do {
            let records = try keys.compactMap { try fresh[$0] ?? node.store.record($0) }
            guard !records.isEmpty else { return handle { $0.pushAnswered(by: address, [], nowMs: now) } }
            try sendPush(records, on: link, to: address)
        } catch {
            pushFailed(to: address, error)
        }
    }

    private func runPush(to address: PeerAddress, keys: [Key]) async {
        do {
            let records = try await pool.runIfActive { [node] in try keys.compactMap { try node.store.record($0) } }
            guard !records.isEmpty else { return handle { $0.pushAnswered(by: address, [], nowMs: now) } }
            let link = try await self.link(to: address)
            try sendPush(records, on: link, to: address)
        } catch {
            pushFailed(to: address, error)
        }
    }

    /// Opens a push of `records` on the link and sends its opening and records (one write); how
    /// it ends goes back to the instance from wherever its answer is taken (`PushAnswer`). Records
    /// that one message cannot carry (`SyncLimits.batches`: 256 records, 2 MiB; a few large values
    /// written together are more) go as several pushes, one after the other, answered to the
    /// instance as one (`PushParts`).
    private func sendPush(_ records: [Record], on link: PeerLink, to address: PeerAddress) throws {
        let parts = PushParts(options.links.syncLimits.batches(records)) { [weak self] outcome in
            guard let self else { return }
            switch outcome {
            case .answered(let results): self.handle { $0.pushAnswered(by: address, results, nowMs: self.now) }
            case .failed(let error): self.pushFailed(to: address, error)
            }
        }
        try parts.start { [pool, limits = options.links.syncLimits] batch, answered in
            var pusher = SyncPusher(state: self.syncState(link), peer: link.peer.name, records: batch, limits: limits)
            let opening = try pusher.start()
            let answer = PushAnswer(pusher, stallTimeout: link.options.sessionStallTimeout, storeWork: { work in
                // A pool already shut down would run the work at once, here on the event loop, against
                // a store that may be closed: the push ends unanswered instead.
                pool.submit { state in work(state == .active) }
            }, ended: answered)
            let id = try link.openSession(answeredInPlace: answer.receive)
            link.send(opening, session: id)
        }
    }

    private func pushFailed(to address: PeerAddress, _ error: any Error) {
        logger.debug("push failed; a repair session follows", metadata: ["peer": "\(address)", "error": "\(error)"])
        handle { $0.pushFailed(to: address, nowMs: now) }
    }

    // MARK: Links

    /// The link to `address`: the open one, or a new one dialed now (one dial at a time per address).
    public func link(to address: PeerAddress) async throws -> PeerLink {
        try await links.link(to: address) {
            try await self.dial(address)
        }
    }

    /// What a link needs to know about this node.
    var linkContext: LinkConnection.Context {
        LinkConnection.Context(
            cluster: node.root, credentials: credentials, options: options.links,
            admit: { [node] identity in node.admissionRefusal(of: identity) },
            precheck: { [store = node.store] records in store.precheck(records) }, logger: logger)
    }

    /// This node's identity on links: its key, name, sync port and the grants chaining it to the root.
    var credentials: LinkCredentials {
        LinkCredentials(signingKey: node.key, name: options.nodeName, syncPort: options.syncPort, credential: node.credential, instance: instanceID)
    }

    /// Why a connection could not be made, in the system's words ("Connection refused"), for
    /// `status`, `sync` and the log, rather than NIO's nested description of every attempt.
    static func connectFailure(_ error: any Error) -> String {
        if let failure = error as? NIOConnectionError, let first = failure.connectionErrors.first { return connectFailure(first.error) }
        if let io = error as? IOError { return String(cString: strerror(io.errnoCode)) }
        if case .connectTimeout(let limit) = error as? ChannelError { return "no answer within \(limit.nanoseconds / 1_000_000) ms" }
        return "\(error)"
    }

    /// Dials and runs a link; returns it once established (the connection lives on in a task).
    private func dial(_ address: PeerAddress) async throws -> PeerLink {
        let options = self.options.links
        let frameLimit = LinkConnection.openingFrameLimit(options)
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(options.connectTimeout)
                .connect(host: address.host, port: address.port) { channel in
                    LinkConnection.pipeline(channel, frameLimit: frameLimit, options: options)
                }
        } catch {
            throw SyncProtocolError("cannot connect to \(address): \(Self.connectFailure(error))")
        }
        return try await withCheckedThrowingContinuation { continuation in
            let handed = Mutex(false)
            Task {
                do {
                    try await LinkConnection.run(
                        channel, frameLimit: frameLimit, role: .initiator, remoteHost: address.host, context: linkContext,
                        established: { link in
                            handed.withLock { $0 = true }
                            self.registered(link, dialed: address)
                            continuation.resume(returning: link)
                        },
                        inbound: { link, event in self.inbound(event, on: link) })
                } catch {
                    if let refused = error as? LinkRefused { self.noteRefused(refused, address: address.description) }
                    if !handed.withLock({ $0 }) { continuation.resume(throwing: error) }
                }
                if handed.withLock({ $0 }) { self.links.remove(address) }
            }
        }
    }

    /// A revocation may have taken a peer's credential: its links close now, and it cannot link again.
    private func dropLinksNoLongerAdmitted() {
        for link in links.open {
            guard let refusal = node.admissionRefusal(of: link.peer) else { continue }
            logger.notice("closing the link to a peer no longer admitted", metadata: [
                "peer": "\(link.peer.name)", "node": "\(link.peer.nodeKey.fingerprint)", "reason": "\(refusal)",
            ])
            link.disconnectNow()
        }
    }

    private func registered(_ link: PeerLink, dialed: PeerAddress?) {
        let lineage = node.lineage(of: link.peer)
        let maximum = options.links.maxLinks
        switch links.add(link, dialed: dialed, lineage: lineage, perNode: options.links.linksPerNode, total: maximum) {
        case .refused:
            counters.withLock { $0.closedForRoom += 1 }
            refusals.note(reason: "links-full", "closed a new link: this node holds its maximum of links, most of them under the same grants as this peer", [
                "peer": "\(link.peer.name) (\(link.peer.nodeKey.fingerprint))", "maximum": "\(maximum)",
            ])
            return
        case .added(let closing, let filed):
            // A peer's name for its address, from a link known to serve it.
            if filed { instance.withLock { $0.learnedName(link.peer.name, of: dialed ?? link.address) } }
            // Past `perNode` a peer's own oldest link goes (routine); any other is the room made.
            for old in closing where old.peer.nodeKey != link.peer.nodeKey {
                counters.withLock { $0.closedForRoom += 1 }
                refusals.note(reason: "links-full", "closed a link to make room: this node holds its maximum of links", [
                    "closed": "\(old.peer.name) (\(old.peer.nodeKey.fingerprint))", "for": "\(link.peer.name) (\(link.peer.nodeKey.fingerprint))",
                    "maximum": "\(maximum)",
                ])
            }
        }
        if abs(link.peerClockOffsetMs) > Int64(node.store.validator.limits.maxSkewMs) {
            logger.warning("a peer's clock differs from this node's by more than the skew bound", metadata: [
                "peer": "\(link.peer.name)", "offset ms": "\(link.peerClockOffsetMs)",
            ])
        }
    }

    /// Serves links until cancelled; `ready` gets the bound port (useful with port 0).
    public func serve(host: String, port: Int, ready: @Sendable (Int) -> Void = { _ in }) async throws {
        let options = self.options.links
        let accepted = AcceptedConnections<FramedConnection>()
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port) { channel in
                // Each connection's limit starts small; its handshake raises it (`accept`).
                let frameLimit = LinkConnection.openingFrameLimit(options)
                return accepted.track(
                    LinkConnection.pipeline(channel, frameLimit: frameLimit, options: options).map { FramedConnection($0, frameLimit: frameLimit) })
            }
        let bound = server.channel.localAddress?.port ?? port
        logger.info("sync listening", metadata: ["address": "\(host):\(bound)"])
        ready(bound)
        try await accepted.serve(server) { await self.accept($0.connection, frameLimit: $0.frameLimit) }
    }

    /// One incoming connection: a pending slot (per source and in all) until its handshake ends.
    private func accept(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, frameLimit: FrameLimit) async {
        let host = connection.channel.remoteAddress?.ipAddress ?? "?"
        let underlying = connection.channel
        guard let slot = handshakes.reserve(host, close: { underlying.close(promise: nil) }) else {
            counters.withLock { $0.refusedBusy += 1 }
            try? await connection.executeThenClose { _, _ in }
            return
        }
        let released = Mutex(false)
        let release: @Sendable () -> Void = { [handshakes] in if !released.withLock({ v in defer { v = true }; return v }) { handshakes.release(slot) } }
        defer { release() }
        do {
            try await LinkConnection.run(
                connection, frameLimit: frameLimit, role: .responder, remoteHost: host, context: linkContext,
                vouched: { [handshakes] in handshakes.vouch(slot) },
                established: { [handshakes] link in
                    handshakes.admitted(slot)
                    release()
                    self.registered(link, dialed: nil)
                },
                inbound: { link, event in self.inbound(event, on: link) })
        } catch let refused as LinkRefused {
            noteRefused(refused, address: host)
        } catch {
            logger.debug("link ended", metadata: ["peer": "\(host)", "error": "\(error)"])
        }
    }

    /// What the peer sent on its own: a session it opened, or its tree hash.
    private func inbound(_ event: PeerLink.Inbound, on link: PeerLink) {
        switch event {
        case .announced(let hash):
            let ours = node.store.treeHash
            handle { $0.announced(by: link.address, theirHash: hash, ourHash: ours, nowMs: now) }
        case .opened(let session, let first, let inbox):
            // A revocation may have taken the peer's credential since the link opened (the store's
            // change stream closes such links too, but a little later): each session asks again.
            // (Asked of the node directly: `linkContext` would read this node's own credential
            // from the store first, a read per push received.)
            if let refusal = node.admissionRefusal(of: link.peer) {
                link.send(.failure("refused: \(refusal)"), session: session)
                noteRefused(LinkRefused(refusal: refusal, peer: link.peer), address: link.address.host)
                link.close()
                return
            }
            // On the store's threads: the records that follow an opening resume it there directly.
            Task(executorPreference: storeThreads) {
                var responder = SyncResponder(state: self.syncState(link), peer: link.peer.name, limits: self.options.links.syncLimits)
                do {
                    try await SessionRunner.run(
                        &responder, opening: [], first: first, session: session, inbox: inbox, link: link, pool: self.pool)
                    let r = responder.report
                    if responder.sessionKind == .full {
                        // The address the link claims: at worst an impostor there makes this node
                        // try the address again sooner (its dial reaches whoever really answers).
                        self.handle { $0.answeredSession(from: link.address, SessionOutcome(completed: r.completedReconciliation, equalAtEnd: r.equalAtEnd)) }
                    }
                    if r.viewRequests > 0, r.recordsReceived + r.recordsSent + r.revocationsReceived + r.revocationsSent > 0 {
                        self.logger.info("answered a sync session", metadata: [
                            "peer": "\(r.peer)", "received": "\(r.recordsReceived)", "sent": "\(r.recordsSent)",
                            "revocations": "\(r.revocationsReceived)/\(r.revocationsSent)",
                        ])
                    }
                } catch {
                    self.logger.info("a session the peer opened ended with an error", metadata: ["peer": "\(link.peer.name)", "error": "\(error)"])
                }
            }
        }
    }

    private func syncState(_ link: PeerLink) -> StoreSyncState {
        StoreSyncState(node: node, peer: link.address, refusals: refusals) { [weak self] keys, starting in
            guard let self else { return }
            self.handle { starting ? $0.willExchange(keys) : $0.didExchange(keys) }
        }
    }

    // MARK: Reporting

    private let counters = Mutex(LinkCounters())

    private func noteRefused(_ refused: LinkRefused, address: String) {
        counters.withLock { $0.refused[refused.refusal.reason, default: 0] += 1 }
        node.noteRefusal(refused.refusal)
        refusals.note(refused.refusal, "refused a link", ["peer": refused.peer.map { "\($0.name) (\($0.nodeKey.fingerprint))" } ?? address, "address": address])
    }

    private func log(_ report: SyncReport, reason: String) {
        guard !report.alreadyEqual else { return }
        logger.info("synced", metadata: [
            "peer": "\(report.peer)", "reason": "\(reason)", "differences": "\(report.recordDifferences)",
            "sent": "\(report.recordsSent)", "received": "\(report.recordsReceived)",
            "revocations": "\(report.revocationsSent)/\(report.revocationsReceived)",
            "refused": "\(report.refusedByPeer.values.reduce(0, +))",
        ])
    }

    /// Every peer known now, for `status`, `/metrics` and the mount root's `peers` attribute.
    public var peers: [GossipPeer] { instance.withLock { Array($0.peers.values) }.sorted { $0.address < $1.address } }

    /// The names peers linked since start go by, by node key (signers named in `kvgossip log`).
    public var peerNames: [PublicKey: String] { links.names }

    public var gossipCounters: GossipCounters { instance.withLock { $0.counters } }

    public var linkCounters: LinkCounters { counters.withLock { $0 } }

    /// `name address` per known peer, one line each (the mount root's `peers` attribute).
    public var peerLines: [String] {
        peers.map { $0.name == $0.address.description ? $0.name : "\($0.name) \($0.address)" }.sorted()
    }

    var now: UInt64 { node.store.clock() }
}

/// Connections refused, for status and metrics.
public struct LinkCounters: Sendable, Equatable {
    /// Links refused by reason (a failed handshake, a peer the cluster does not admit).
    public var refused: [RefusalReason: Int] = [:]
    /// Connections closed at once because too many were still in their handshake.
    public var refusedBusy = 0
    /// Established links closed because the node held its maximum (`LinkEviction` chose them).
    public var closedForRoom = 0
}
