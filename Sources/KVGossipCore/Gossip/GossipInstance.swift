/// Where a committed record came from, which decides whether it is spread further.
public enum CommitOrigin: Sendable, Equatable {
    /// Minted here or handed in by a client: pushed to `GossipConfig.writeFanout` peers.
    case local
    /// Pushed by a peer: new to this node, so forwarded to `GossipConfig.forwardFanout` peers
    /// other than the sender, unless the sender reached every peer already
    /// (`GossipConfig.forwardsPushes`).
    case pushed(by: PeerAddress)
    /// Sent by a peer unasked in a full session it opened (its own records this node lacked):
    /// that peer reached no other node with them, so they are forwarded to `forwardFanout` peers
    /// other than the sender, under direct mail too (unless the forward would reach every peer,
    /// at most 5 nodes by default).
    case handedOver(by: PeerAddress)
    /// Fetched in a full session: not forwarded (anti-entropy spreads it anyway).
    case pulled(from: PeerAddress)

    /// The origin of records a session applied, by how they came from `peer`.
    public init(_ arrival: RecordArrival, from peer: PeerAddress) {
        self = switch arrival {
        case .pushed: .pushed(by: peer)
        case .handedOver: .handedOver(by: peer)
        case .pulled: .pulled(from: peer)
        }
    }
}

/// What the shell is asked to do.
public enum GossipDirective: Sendable, Equatable {
    /// Run a full session with the peer (dialing a link first if there is none).
    case startSession(PeerAddress, reason: String)
    /// Send the current records of these keys to the peer in one push.
    case push(PeerAddress, keys: [Key])
    /// Tell the peer this node's tree hash.
    case announce(PeerAddress)
    /// Key states changed: the state of each key now.
    case keyStates([Key: KeyState])
    /// The default state of keys without one of their own changed.
    case defaultState(KeyState)
}

/// How a session ended, as the shell reports it.
public struct SessionOutcome: Sendable, Equatable {
    /// The session ran to its end (each side sent what the other lacked).
    public var completed: Bool
    /// Both tree hashes were equal at the end.
    public var equalAtEnd: Bool
    public var error: String?

    public init(completed: Bool, equalAtEnd: Bool, error: String? = nil) {
        self.completed = completed
        self.equalAtEnd = equalAtEnd
        self.error = error
    }

    public static func failed(_ error: String) -> SessionOutcome { SessionOutcome(completed: false, equalAtEnd: false, error: error) }
}

/// The gossip of one node as a state machine (the way `SWIM.Instance` is built): it owns the peers,
/// the sessions and pushes in flight, the push queues, repairs, and every key's state; events come
/// in, directives go out, and a thin shell carries them out (Docs/architecture.md §Gossip). No I/O,
/// no clock (times come in as milliseconds), no randomness but the seeded generator it is given.
public struct GossipInstance: Sendable {
    public let config: GossipConfig
    public private(set) var keyStates: KeyStateBook
    /// Who the peers are (shared storage: one table can serve many instances), and this node's
    /// own address if the table lists it.
    public private(set) var table = PeerTable()
    private var ownAddress: PeerAddress?
    /// This node's name (its Serf name), which places it on the ring of peers
    /// (`PeerTable.ring`); where the table lists this node, its name there.
    private var ownName: String?
    /// What this node did with each peer, only for peers it did something with: a fleet node's
    /// table has thousands of peers, of which a write touches a few (Docs/architecture.md §Gossip).
    private(set) var states: [PeerAddress: GossipPeer] = [:]
    /// Counters for status and metrics.
    public private(set) var counters = GossipCounters()
    private var random: SplitMix64
    private var nextRoundMs: UInt64?
    private var startupDone = false
    private var announceAtMs: UInt64?
    /// Peers known to hold every record the pending announcement (`announceAtMs`) is for (their
    /// sender, the peers this node pushed them to), passed over by it.
    private var announceHolders: Set<PeerAddress> = []
    private var announcedSessions = 0
    private let expectsPeers: Bool
    // Indexes kept beside the states so that nothing per event costs a pass over every peer (a
    // fleet node knows thousands): peers that may have a push to send, repairs by due time, peers
    // whose last push or session failed, and the totals of keys queued and pushes in flight.
    private var ready = ReadyPeers()
    private var repairs = TimedQueue<PeerAddress>()
    private var failing: Set<PeerAddress> = []
    private var queuedTotal = 0
    private var inFlightTotal = 0
    /// Pushes and sessions still in flight to peers that left: their ends, when they come, belong
    /// to the peer as it was, not to its state after a rejoin (counted down, then forgotten).
    private var departed: [PeerAddress: (pushes: Int, session: Bool)] = [:]

    /// - Parameters:
    ///   - expectsPeers: false for a node configured with no peers at all, whose keys are
    ///     trivially synced; true starts every key `unsynced` until a session with a peer completes.
    ///   - name: this node's name among its peers' (Serf's node name): where it sits on the ring
    ///     its pushes and announcements follow. Without one they go to random peers.
    public init(config: GossipConfig = GossipConfig(), expectsPeers: Bool, seed: UInt64, name: String? = nil) {
        self.config = config
        ownName = name
        keyStates = KeyStateBook(expectsPeers: expectsPeers)
        self.expectsPeers = expectsPeers
        random = SplitMix64(seed: seed)
    }

    public var isStarted: Bool { startupDone }

    // MARK: Peers

    /// The peers now: static ones (`--peer`) and live members (Serf), by sync address.
    public mutating func setPeers(members: [(name: String, address: PeerAddress)], statics: [PeerAddress], nowMs: UInt64) -> [GossipDirective] {
        setPeers(PeerTable(members: members, statics: statics), ownAddress: nil, nowMs: nowMs)
    }

    /// The peers now, as a table that may list this node itself at `ownAddress` (so that many
    /// nodes can share one table's storage, as the simulator's do).
    public mutating func setPeers(_ next: PeerTable, ownAddress own: PeerAddress?, nowMs: UInt64) -> [GossipDirective] {
        let (before, beforeOwn) = (table, ownAddress)
        table = next
        ownAddress = own
        if let own, let name = next.names[own] { ownName = name }
        // Peers that left take their queues with them: the keys were pushed elsewhere too.
        for (address, state) in states {
            guard isPeer(address) else {
                inFlightTotal -= state.pushesInFlight
                queuedTotal -= state.queue.count
                if state.sessionAnnounced { announcedSessions -= 1 }
                if state.pushesInFlight > 0 || state.sessionInFlight {
                    departed[address] = (state.pushesInFlight, state.sessionInFlight)
                }
                states[address] = nil
                continue
            }
            states[address]!.isStatic = table.statics.contains(address)
            if !states[address]!.isStatic, let name = table.names[address] { states[address]!.name = name }
        }
        // The tables of who is a peer, copied out: the closures must not read `self` while the
        // indexes they filter are being changed.
        let (now, own) = (table.names, ownAddress)
        let stays = { (a: PeerAddress) in a != own && now[a] != nil }
        ready.removeAll { !stays($0) }
        repairs.removeAll { !stays($0) }
        failing = failing.filter(stays)
        guard startupDone else { return [] }
        let joined = table.addresses.filter { isPeer($0) && ($0 == beforeOwn || before.names[$0] == nil) }
        // Every node hears of a join. In all, about `joinedSessions` of them reconcile with each
        // new member, not all N at once (when a partition heals, half the cluster joins the other
        // half); the new member runs its own start-up sessions too.
        let chance = Double(config.joinedSessions) / Double(max(1, peerCount))
        var out: [GossipDirective] = []
        for address in joined where chance >= 1 || Double.random(in: 0 ..< 1, using: &random) < chance {
            out += want(session: address, "member joined")
        }
        return out + pump(nowMs: nowMs)
    }

    /// Every peer as the gossip knows it (for status; a pass over the whole table).
    public var peers: [PeerAddress: GossipPeer] {
        var out: [PeerAddress: GossipPeer] = [:]
        for address in table.addresses where address != ownAddress { out[address] = self.peer(address) }
        return out
    }

    public var peerCount: Int { table.addresses.count - (ownAddress.map { table.names[$0] != nil } == true ? 1 : 0) }

    public func isPeer(_ address: PeerAddress) -> Bool { address != ownAddress && table.names[address] != nil }

    /// The peer at `address`, with what this node did with it, or nil if it is not a peer.
    public func peer(_ address: PeerAddress) -> GossipPeer? {
        guard isPeer(address) else { return nil }
        return states[address] ?? GossipPeer(address: address, name: table.names[address]!, isStatic: table.statics.contains(address))
    }

    /// Keeps what this node did with a peer; forgets a peer it has nothing on any more.
    private mutating func put(_ peer: GossipPeer) {
        states[peer.address] = peer.isIdle && peer.name == table.names[peer.address] ? nil : peer
    }

    private mutating func update(_ address: PeerAddress, _ change: (inout GossipPeer) -> Void) {
        guard var p = self.peer(address) else { return }
        change(&p)
        put(p)
    }

    /// This node's own name as its peers know it (the Serf agent's node name, where that is not
    /// the name the instance was given): its place on the ring.
    public mutating func setOwnName(_ name: String) {
        ownName = name
    }

    /// A peer's name, as its link's handshake told it.
    public mutating func learnedName(_ name: String, of address: PeerAddress) {
        update(address) { $0.name = name }
    }

    // MARK: Start and time

    /// The agent is up: reconcile with every static peer and one random member, and with the
    /// members `differing` says differ (the start-up tree-hash query), then follow the periodic
    /// rounds.
    public mutating func start(differing: [PeerAddress] = [], nowMs: UInt64) -> [GossipDirective] {
        startupDone = true
        nextRoundMs = nowMs + jittered(config.antiEntropyIntervalMs)
        var targets = Set(table.statics.filter(isPeer)).union(differing.filter(isPeer))
        if let any = randomMember() { targets.insert(any) }
        var out: [GossipDirective] = []
        for address in targets.sorted() { out += want(session: address, "start") }
        return out
    }

    /// The earliest time `tick` has something to do.
    public var nextWakeMs: UInt64? {
        // A cancelled repair may still head the schedule: then a tick finds nothing to do.
        [nextRoundMs, announceAtMs, repairs.nextTime].compactMap { $0 }.min()
    }

    /// Runs what is due: the periodic round with a random peer, repairs, announcements.
    public mutating func tick(nowMs: UInt64) -> [GossipDirective] {
        var out: [GossipDirective] = []
        if let due = nextRoundMs, due <= nowMs {
            nextRoundMs = nowMs + jittered(config.antiEntropyIntervalMs)
            if let peer = pick(1, excluding: []).first { out += want(session: peer, "periodic") }
        }
        while let (due, address) = repairs.popDue(at: nowMs) {
            guard states[address]?.repairAtMs == due else { continue }  // cancelled or moved
            setRepair(address, nil)
            out += want(session: address, "repair after a failure")
        }
        if let due = announceAtMs, due <= nowMs {
            announceAtMs = nil
            let targets = successors(config.announceFanout(peers: peerCount), excluding: announceHolders)
            announceHolders = []
            for address in targets { out.append(.announce(address)) }
            counters.announcements += targets.count
        }
        return out
    }

    // MARK: Records

    /// A record was committed to this node's store.
    public mutating func committed(_ key: Key, digest: Hash256, origin: CommitOrigin, nowMs: UInt64) -> [GossipDirective] {
        var out: [GossipDirective] = []
        let targets: [PeerAddress]
        // Whether peers should hear the new tree hash, and the peer it came from.
        var announce = true
        var sender: PeerAddress?
        switch origin {
        case .local:
            targets = alongTheRing(pick(config.writeFanout(peers: peerCount), excluding: [], skippingFailing: true), sender: nil)
            // Pushed to every peer: each gets it or, if the push fails, a repair session.
            announce = targets.count < peerCount
            // Pending until a peer holds it; a node with no peers at all has no one to wait for.
            if expectsPeers || peerCount > 0, keyStates.minted(key, digest: digest) { out.append(.keyStates([key: keyStates.state(of: key)])) }
        case .pushed(let from), .handedOver(let from):
            sender = from
            let forwards: Bool
            if !isPeer(from) {
                // A sender this node does not know has a view of the cluster unlike this node's:
                // what it reached says nothing about this node's peers.
                forwards = true
            } else if origin == .handedOver(by: from) {
                // The sender reached this node alone, unless forwarding would reach every peer.
                forwards = config.forwardFanout(peers: peerCount) < peerCount
            } else {
                forwards = config.forwardsPushes(peers: peerCount, hasStaticPeers: table.statics.contains(where: isPeer))
            }
            // Not forwarded, the announcement is the way to a peer the sender does not know.
            targets = forwards ? alongTheRing(pick(config.forwardFanout(peers: peerCount), excluding: [from], skippingFailing: true), sender: from) : []
            counters.forwarded += targets.count
        case .pulled(let from):
            // Not pushed on (anti-entropy spreads it), but announced: a node that pulls after an
            // announcement tells the next ones on the ring in turn, so the news goes on past
            // where pushes stopped (a hub's leaves, a cluster that mixes direct mail with forwards).
            sender = from
            targets = []
        }
        for address in targets { out += enqueue(key, for: address) }
        if announce, config.announceFanout(peers: peerCount) > 0 {
            // The announcement passes over the peers that hold every record it is for.
            let holders = Set(targets).union(sender.map { [$0] } ?? [])
            if announceAtMs == nil {
                announceAtMs = nowMs + config.announceDelayMs
                announceHolders = holders
            } else {
                announceHolders.formIntersection(holders)
            }
        }
        return out + pump(nowMs: nowMs)
    }

    /// A push was answered: one result per key, for the digest that was sent.
    public mutating func pushAnswered(by address: PeerAddress, _ results: [(key: Key, digest: Hash256, held: Bool)], nowMs: UInt64) -> [GossipDirective] {
        if pushEnded(address) { reached(address) }
        counters.pushesOK += 1
        var changed: [Key: KeyState] = [:]
        for r in results where r.held {
            if keyStates.acknowledged(r.key, digest: r.digest) { changed[r.key] = keyStates.state(of: r.key) }
        }
        return (changed.isEmpty ? [] : [.keyStates(changed)]) + pump(nowMs: nowMs)
    }

    /// A push did not arrive (no link, the link broke, the peer refused it): a full session with
    /// that peer repairs it a moment later. Until a push or session with it succeeds again, the
    /// peer gets no pushes (the repair carries what it misses) and keys go to other peers instead.
    public mutating func pushFailed(to address: PeerAddress, nowMs: UInt64) -> [GossipDirective] {
        counters.pushesFailed += 1
        if pushEnded(address) { failed(address, nowMs: nowMs) }
        return pump(nowMs: nowMs)
    }

    // MARK: Sessions

    /// A full session this node asked for ended.
    public mutating func sessionEnded(with address: PeerAddress, _ outcome: SessionOutcome, nowMs: UInt64) -> [GossipDirective] {
        if departed[address]?.session == true {
            // Started before the peer left: says nothing about the peer as it is now.
            endDeparted(address) { $0.session = false }
            return outcome.completed ? earnedSync() : []
        }
        guard var peer = self.peer(address) else { return [] }
        let pendingAtStart = peer.pendingAtSessionStart
        peer.sessionInFlight = false
        peer.pendingAtSessionStart = [:]
        var out: [GossipDirective] = []
        if outcome.completed {
            counters.sessionsOK += 1
            peer.lastSyncMs = nowMs
            peer.agreed = outcome.equalAtEnd
            peer.lastError = nil
            out += earnedSync()
            // The peer now holds at least what this node held when the session began.
            var changed: [Key: KeyState] = [:]
            for (key, digest) in pendingAtStart where keyStates.acknowledged(key, digest: digest) { changed[key] = keyStates.state(of: key) }
            if !changed.isEmpty { out.append(.keyStates(changed)) }
        } else {
            counters.sessionsFailed += 1
            peer.agreed = false
            peer.lastError = outcome.error
        }
        // A completed session did a repair's work, unless the repair is for a failure during the
        // session (a push whose keys this session may not have carried); the schedule drops the
        // cancelled entry.
        if outcome.completed && !peer.failedDuringSession { peer.repairAtMs = nil }
        peer.failedDuringSession = false
        if peer.sessionAnnounced {
            peer.sessionAnnounced = false
            announcedSessions -= 1
        }
        let wanted = peer.sessionWanted
        peer.sessionWanted = nil
        put(peer)
        if outcome.completed { reached(address) } else { failed(address, nowMs: nowMs) }
        if let wanted { out += want(session: address, wanted) }
        return out
    }

    /// A session run outside the schedule (`kvgossip sync`) ended: it informs the peer's record
    /// and, completed, counts as a comparison.
    public mutating func noteSession(with address: PeerAddress, _ outcome: SessionOutcome, nowMs: UInt64) -> [GossipDirective] {
        update(address) { peer in
            peer.lastError = outcome.error
            peer.agreed = outcome.completed ? outcome.equalAtEnd : false
            if outcome.completed { peer.lastSyncMs = nowMs }
        }
        guard outcome.completed else { return [] }
        reached(address)
        return earnedSync()
    }

    /// A session a peer opened with this node ended: completed, it counts as a comparison too.
    /// It also shows the peer is back, if it was failing (an agent that restarts opens sessions).
    public mutating func answeredSession(from address: PeerAddress?, _ outcome: SessionOutcome) -> [GossipDirective] {
        guard outcome.completed else { return [] }
        if let address { reached(address) }
        return earnedSync()
    }

    /// A peer told this node its tree hash. If it differs, a full session with that peer settles it
    /// (a bounded number at once: the periodic round picks up the rest).
    public mutating func announced(by address: PeerAddress, theirHash: Hash256, ourHash: Hash256, nowMs: UInt64) -> [GossipDirective] {
        guard theirHash != ourHash, let peer = self.peer(address), !peer.sessionInFlight,
            announcedSessions < config.announcedSessionsInFlight
        else { return [] }
        let out = want(session: address, "its tree hash differs")
        if !out.isEmpty {
            announcedSessions += 1
            update(address) { $0.sessionAnnounced = true }
        }
        return out
    }

    /// Someone says this node differs from the peer (the start-up tree-hash query): reconcile.
    public mutating func reconcile(with address: PeerAddress, reason: String) -> [GossipDirective] {
        want(session: address, reason)
    }

    /// A full session found these keys differ; they are pending a fetch until `didExchange`.
    public mutating func willExchange(_ keys: [Key]) -> [GossipDirective] {
        let changed = keyStates.willExchange(keys)
        return changed.isEmpty ? [] : [.keyStates(Dictionary(uniqueKeysWithValues: changed.map { ($0, keyStates.state(of: $0)) }))]
    }

    public mutating func didExchange(_ keys: [Key]) -> [GossipDirective] {
        let changed = keyStates.didExchange(keys)
        return changed.isEmpty ? [] : [.keyStates(Dictionary(uniqueKeysWithValues: changed.map { ($0, keyStates.state(of: $0)) }))]
    }

    // MARK: Internals

    /// Counts a push's end; false if the push was to the peer before it left (uncounted then).
    private mutating func pushEnded(_ address: PeerAddress) -> Bool {
        if (departed[address]?.pushes ?? 0) > 0 {
            endDeparted(address) { $0.pushes -= 1 }
            return false
        }
        guard isPeer(address) else { return false }
        update(address) { $0.pushesInFlight -= 1 }
        inFlightTotal -= 1
        if let peer = self.peer(address), !peer.queue.isEmpty { ready.append(address) }
        return true
    }

    private mutating func endDeparted(_ address: PeerAddress, _ change: (inout (pushes: Int, session: Bool)) -> Void) {
        guard var entry = departed[address] else { return }
        change(&entry)
        departed[address] = entry.pushes > 0 || entry.session ? entry : nil
    }

    private mutating func setRepair(_ address: PeerAddress, _ atMs: UInt64?) {
        update(address) { $0.repairAtMs = atMs }
        if let atMs { repairs.schedule(address, at: atMs) }
    }

    /// A push to the peer or a session with it failed: its queue is dropped and it gets no pushes
    /// until it answers again; a repair session is due after a delay that doubles with each
    /// failure in a row, up to the periodic round's interval (a peer that is down costs one
    /// attempt per interval, not one per record).
    private mutating func failed(_ address: PeerAddress, nowMs: UInt64) {
        guard var peer = self.peer(address) else { return }
        peer.failuresInARow += 1
        if peer.sessionInFlight { peer.failedDuringSession = true }
        queuedTotal -= peer.queue.count
        peer.queue = []
        peer.queued = []
        let backoff = config.repairDelayMs << UInt64(min(peer.failuresInARow - 1, 16))
        if peer.repairAtMs == nil {
            peer.repairAtMs = nowMs + min(backoff, max(config.antiEntropyIntervalMs, config.repairDelayMs))
            repairs.schedule(address, at: peer.repairAtMs!)
        }
        put(peer)
        failing.insert(address)
    }

    /// The peer answered a push or completed a session: it takes pushes again.
    private mutating func reached(_ address: PeerAddress) {
        guard failing.remove(address) != nil else { return }
        update(address) { $0.failuresInARow = 0 }
    }

    private mutating func earnedSync() -> [GossipDirective] {
        keyStates.setDefault(.synced) ? [.defaultState(.synced)] : []
    }

    /// Starts a session with the peer, or remembers to once the running one ends.
    private mutating func want(session address: PeerAddress, _ reason: String) -> [GossipDirective] {
        guard var peer = self.peer(address) else { return [] }
        if peer.sessionInFlight {
            if peer.sessionWanted == nil { peer.sessionWanted = reason }
            put(peer)
            return []
        }
        peer.sessionInFlight = true
        peer.pendingAtSessionStart = keyStates.pendingPush
        put(peer)
        return [.startSession(address, reason: reason)]
    }

    private mutating func enqueue(_ key: Key, for address: PeerAddress) -> [GossipDirective] {
        guard var peer = self.peer(address), peer.queued.insert(key).inserted else { return [] }
        peer.queue.append(key)
        queuedTotal += 1
        if peer.queue.count > config.queueLimit || queuedTotal > config.queuedKeysLimit {
            // Too far behind for pushes (this peer, or all of them together): a full session
            // catches the peer up instead, and the queue's memory is given back.
            counters.queueOverflows += 1
            queuedTotal -= peer.queue.count
            peer.queue = []
            peer.queued = []
            put(peer)
            return want(session: address, "push queue overflowed")
        }
        if peer.pushesInFlight < config.pushesPerPeer { ready.append(address) }
        put(peer)
        return []
    }

    /// Sends queued keys, within the per-peer and overall limits, serving ready peers in turn.
    private mutating func pump(nowMs: UInt64) -> [GossipDirective] {
        var out: [GossipDirective] = []
        while inFlightTotal < config.pushesInFlight, let address = ready.popFirst() {
            guard var peer = self.peer(address), !peer.queue.isEmpty, peer.pushesInFlight < config.pushesPerPeer else { continue }
            let batch = Array(peer.queue.prefix(config.pushBatch))
            peer.queue.removeFirst(batch.count)
            peer.queued.subtract(batch)
            queuedTotal -= batch.count
            peer.pushesInFlight += 1
            inFlightTotal += 1
            out.append(.push(address, keys: batch))
            // Back of the line with what is left; a peer at its own limit returns when a push ends.
            if !peer.queue.isEmpty, peer.pushesInFlight < config.pushesPerPeer { ready.append(address) }
            put(peer)
        }
        return out
    }

    /// Up to `count` distinct random peers, none `excluded` and, if `skippingFailing`, none whose
    /// last push or session failed.
    private mutating func pick(_ count: Int, excluding excluded: Set<PeerAddress>, skippingFailing: Bool = false) -> [PeerAddress] {
        let order = table.addresses
        let skipped = skippingFailing ? failing : []
        func eligible(_ a: PeerAddress) -> Bool { isPeer(a) && !excluded.contains(a) && !skipped.contains(a) }
        let available = peerCount - skipped.count - excluded.filter { isPeer($0) && !skipped.contains($0) }.count
        // Few out of many (the usual case): draw indexes until enough distinct ones, without a
        // pass over every peer (about count · table / available draws). When most are taken or
        // skipped, one pass is cheaper.
        guard count * 4 < available, available * 8 >= order.count else {
            return Array(order.filter(eligible).shuffled(using: &random).prefix(count))
        }
        var chosen: Set<Int> = []
        var out: [PeerAddress] = []
        while out.count < count {
            let i = Int.random(in: 0..<order.count, using: &random)
            guard eligible(order[i]), chosen.insert(i).inserted else { continue }
            out.append(order[i])
        }
        return out
    }

    /// Random push targets, and the next peer on the ring too (`GossipConfig.forwardsAlongRing`)
    /// unless they reach every peer already (direct mail) or none.
    private mutating func alongTheRing(_ targets: [PeerAddress], sender: PeerAddress?) -> [PeerAddress] {
        guard config.forwardsAlongRing, !targets.isEmpty, targets.count < peerCount,
            let next = successors(1, excluding: sender.map { [$0] } ?? []).first, !targets.contains(next)
        else { return targets }
        return targets + [next]
    }

    /// The first `count` peers after this node on the ring (`PeerTable.ring`), none `excluded`
    /// and none whose last push or session failed: a node's predecessors are the ones that push
    /// to it and tell it a new tree hash, so a node the random pushes missed is still reached. A
    /// node without a name, or whose peers are not on the ring (static peers Serf does not list),
    /// picks at random, and so does a walk that meets a long run of peers it must pass over (a
    /// partition, a rack that went down): after 64 entries the rest are random picks.
    private mutating func successors(_ count: Int, excluding excluded: Set<PeerAddress>) -> [PeerAddress] {
        let ring = table.ring
        guard let ownName, !ring.isEmpty else { return pick(count, excluding: excluded, skippingFailing: true) }
        var out: [PeerAddress] = []
        var i = table.ringIndex(after: ownName, address: ownAddress)
        var left = min(ring.count, 64)
        while out.count < count && left > 0 {
            let a = ring[i]
            i = i + 1 == ring.count ? 0 : i + 1
            left -= 1
            if isPeer(a) && !excluded.contains(a) && !failing.contains(a) { out.append(a) }
        }
        if out.count < count { out += pick(count - out.count, excluding: excluded.union(out), skippingFailing: true) }
        return out
    }

    /// A random peer that is not static, if there is one.
    private mutating func randomMember() -> PeerAddress? {
        let order = table.addresses
        guard !order.isEmpty else { return nil }
        // Statics are few: a handful of draws finds a member without a pass over the table.
        for _ in 0 ..< 16 {
            let a = order[Int.random(in: 0..<order.count, using: &random)]
            if isPeer(a) && !table.statics.contains(a) { return a }
        }
        return order.filter { isPeer($0) && !table.statics.contains($0) }.randomElement(using: &random)
    }

    private mutating func jittered(_ ms: UInt64) -> UInt64 {
        guard ms > 0 else { return 0 }
        let span = ms / 5
        return ms - span + UInt64.random(in: 0...(2 * span), using: &random)
    }
}

/// What the gossip did since start, for status and metrics.
public struct GossipCounters: Sendable, Equatable {
    public var sessionsOK = 0
    public var sessionsFailed = 0
    public var pushesOK = 0
    public var pushesFailed = 0
    /// Records forwarded on (pushed to another peer after arriving by push).
    public var forwarded = 0
    /// Push queues dropped for a full session (the peer was too far behind).
    public var queueOverflows = 0
    public var announcements = 0
}
