/// Where a committed record came from, which decides whether it is spread further.
public enum CommitOrigin: Sendable, Equatable {
    /// Minted here or handed in by a client: pushed to `fanout` peers.
    case local
    /// Sent by a peer unasked (a push, or its own records in a session it opened): new to this
    /// node, so forwarded to `fanout` peers other than the sender, unless the sender reached
    /// every peer already (`GossipConfig.forwardsPushes`).
    case pushed(by: PeerAddress)
    /// Fetched in a full session: not forwarded (anti-entropy spreads it anyway).
    case pulled(from: PeerAddress)
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

/// A peer as the gossip knows it.
public struct GossipPeer: Sendable, Equatable {
    public var address: PeerAddress
    /// From Serf or the link's handshake; the address until known.
    public var name: String
    /// Configured (`--peer`): stays when Serf forgets it.
    public var isStatic: Bool
    public var lastSyncMs: UInt64?
    public var agreed: Bool?
    public var lastError: String?
    var sessionInFlight = false
    /// The running session was started by an announcement (they are limited in number).
    var sessionAnnounced = false
    var sessionWanted: String?
    var repairAtMs: UInt64?
    var pushesInFlight = 0
    var queue: [Key] = []
    var queued: Set<Key> = []
    /// Pending pushes when the running session started: a completed session settles them.
    var pendingAtSessionStart: [Key: Hash256] = [:]
}

/// The gossip of one node as a state machine (the way `SWIM.Instance` is built): it owns the peers,
/// the sessions and pushes in flight, the push queues, repairs, and every key's state; events come
/// in, directives go out, and a thin shell carries them out (Docs/architecture.md §Gossip). No I/O,
/// no clock (times come in as milliseconds), no randomness but the seeded generator it is given.
public struct GossipInstance: Sendable {
    public let config: GossipConfig
    public private(set) var keyStates: KeyStateBook
    public private(set) var peers: [PeerAddress: GossipPeer] = [:]
    /// Counters for status and metrics.
    public private(set) var counters = GossipCounters()
    private var random: SplitMix64
    private var nextRoundMs: UInt64?
    private var startupDone = false
    private var announceAtMs: UInt64?
    /// A peer known to hold every record the pending announcement is for (the sender of records
    /// this node did not forward), left out of it.
    private var announceSkip: PeerAddress?
    private var announcedSessions = 0
    private let expectsPeers: Bool
    // Indexes kept beside `peers` so that nothing per event costs a pass over every peer (a fleet
    // node knows thousands): the addresses in order, peers with keys queued, peers awaiting a
    // repair, and the pushes in flight to all of them.
    private var order: [PeerAddress] = []
    private var waiting: Set<PeerAddress> = []
    private var repairing: Set<PeerAddress> = []
    private var inFlightTotal = 0

    /// - Parameter expectsPeers: false for a node configured with no peers at all, whose keys are
    ///   trivially synced; true starts every key `unsynced` until a session with a peer completes.
    public init(config: GossipConfig = GossipConfig(), expectsPeers: Bool, seed: UInt64) {
        self.config = config
        keyStates = KeyStateBook(expectsPeers: expectsPeers)
        self.expectsPeers = expectsPeers
        random = SplitMix64(seed: seed)
    }

    public var isStarted: Bool { startupDone }

    // MARK: Peers

    /// The peers now: static ones (`--peer`) and live members (Serf), by sync address.
    public mutating func setPeers(members: [(name: String, address: PeerAddress)], statics: [PeerAddress], nowMs: UInt64) -> [GossipDirective] {
        var next: [PeerAddress: GossipPeer] = [:]
        for address in statics {
            next[address] = peers[address] ?? GossipPeer(address: address, name: address.description, isStatic: true)
            next[address]!.isStatic = true
        }
        for member in members where next[member.address] == nil {
            var peer = peers[member.address] ?? GossipPeer(address: member.address, name: member.name, isStatic: false)
            peer.name = member.name
            next[member.address] = peer
        }
        let joined = next.keys.filter { peers[$0] == nil }.sorted()
        // Peers that left take their queues with them: the keys were pushed elsewhere too.
        for (address, peer) in peers where next[address] == nil { inFlightTotal -= peer.pushesInFlight }
        peers = next
        order = next.keys.sorted()
        waiting = waiting.filter { next[$0] != nil }
        repairing = repairing.filter { next[$0] != nil }
        guard startupDone else { return [] }
        var out: [GossipDirective] = []
        for address in joined { out += want(session: address, "member joined") }
        return out + pump(nowMs: nowMs)
    }

    /// A peer's name, as its link's handshake told it.
    public mutating func learnedName(_ name: String, of address: PeerAddress) {
        peers[address]?.name = name
    }

    // MARK: Start and time

    /// The agent is up: reconcile with every static peer and one random member, and with the
    /// members `differing` says differ (the start-up tree-hash query), then follow the periodic
    /// rounds.
    public mutating func start(differing: [PeerAddress] = [], nowMs: UInt64) -> [GossipDirective] {
        startupDone = true
        nextRoundMs = nowMs + jittered(config.antiEntropyIntervalMs)
        var targets = Set(peers.values.filter(\.isStatic).map(\.address)).union(differing.filter { peers[$0] != nil })
        if let any = order.filter({ peers[$0]?.isStatic == false }).randomElement(using: &random) { targets.insert(any) }
        var out: [GossipDirective] = []
        for address in targets.sorted() { out += want(session: address, "start") }
        return out
    }

    /// The earliest time `tick` has something to do.
    public var nextWakeMs: UInt64? {
        ([nextRoundMs, announceAtMs] + repairing.map { peers[$0]?.repairAtMs }).compactMap { $0 }.min()
    }

    /// Runs what is due: the periodic round with a random peer, repairs, announcements.
    public mutating func tick(nowMs: UInt64) -> [GossipDirective] {
        var out: [GossipDirective] = []
        if let due = nextRoundMs, due <= nowMs {
            nextRoundMs = nowMs + jittered(config.antiEntropyIntervalMs)
            if let peer = order.randomElement(using: &random) { out += want(session: peer, "periodic") }
        }
        for address in repairing.sorted() {
            guard let due = peers[address]?.repairAtMs, due <= nowMs else { continue }
            setRepair(address, nil)
            out += want(session: address, "repair after a failed push")
        }
        if let due = announceAtMs, due <= nowMs {
            announceAtMs = nil
            let targets = pick(config.announceFanout(peers: peers.count), excluding: announceSkip)
            announceSkip = nil
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
        // Whether peers should hear the new tree hash, and one that surely holds the record.
        var announce = true
        var holder: PeerAddress?
        switch origin {
        case .local:
            targets = pick(fanout, excluding: nil)
            // Pushed to every peer: each gets it or, if the push fails, a repair session.
            announce = targets.count < peers.count
            // Pending until a peer holds it; a node with no peers at all has no one to wait for.
            if expectsPeers || !peers.isEmpty, keyStates.minted(key, digest: digest) { out.append(.keyStates([key: keyStates.state(of: key)])) }
        case .pushed(let sender):
            // A sender this node does not know has a view of the cluster unlike this node's: what
            // it reached says nothing about this node's peers.
            let forwards = peers[sender] == nil || config.forwardsPushes(peers: peers.count)
            targets = forwards ? pick(fanout, excluding: sender) : []
            // Not forwarded: the announcement is the way to a peer the sender does not know.
            if !forwards { holder = sender }
            counters.forwarded += targets.count
        case .pulled:
            return []
        }
        for address in targets { out += enqueue(key, for: address) }
        if announce, config.announceFanout(peers: peers.count) > 0 {
            if announceAtMs == nil {
                announceAtMs = nowMs + config.announceDelayMs
                announceSkip = holder
            } else if announceSkip != holder {
                announceSkip = nil  // the records pending announcement came from different peers
            }
        }
        return out + pump(nowMs: nowMs)
    }

    /// A push was answered: one result per key, for the digest that was sent.
    public mutating func pushAnswered(by address: PeerAddress, _ results: [(key: Key, digest: Hash256, held: Bool)], nowMs: UInt64) -> [GossipDirective] {
        pushEnded(address)
        counters.pushesOK += 1
        var changed: [Key: KeyState] = [:]
        for r in results where r.held {
            if keyStates.acknowledged(r.key, digest: r.digest) { changed[r.key] = keyStates.state(of: r.key) }
        }
        return (changed.isEmpty ? [] : [.keyStates(changed)]) + pump(nowMs: nowMs)
    }

    /// A push did not arrive (no link, the link broke, the peer refused it): a full session with
    /// that peer repairs it a moment later.
    public mutating func pushFailed(to address: PeerAddress, nowMs: UInt64) -> [GossipDirective] {
        pushEnded(address)
        counters.pushesFailed += 1
        if peers[address] != nil, peers[address]?.repairAtMs == nil { setRepair(address, nowMs + config.repairDelayMs) }
        return pump(nowMs: nowMs)
    }

    // MARK: Sessions

    /// A full session this node asked for ended.
    public mutating func sessionEnded(with address: PeerAddress, _ outcome: SessionOutcome, nowMs: UInt64) -> [GossipDirective] {
        guard var peer = peers[address] else { return [] }
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
        if peer.repairAtMs != nil && outcome.completed {
            peer.repairAtMs = nil
            repairing.remove(address)
        }
        if peer.sessionAnnounced {
            peer.sessionAnnounced = false
            announcedSessions -= 1
        }
        let wanted = peer.sessionWanted
        peer.sessionWanted = nil
        peers[address] = peer
        if let wanted { out += want(session: address, wanted) }
        return out
    }

    /// A session run outside the schedule (`kvgossip sync`) ended: it informs the peer's record
    /// and, completed, counts as a comparison.
    public mutating func noteSession(with address: PeerAddress, _ outcome: SessionOutcome, nowMs: UInt64) -> [GossipDirective] {
        if peers[address] != nil {
            peers[address]?.lastError = outcome.error
            peers[address]?.agreed = outcome.completed ? outcome.equalAtEnd : false
            if outcome.completed { peers[address]?.lastSyncMs = nowMs }
        }
        return outcome.completed ? earnedSync() : []
    }

    /// A session a peer opened with this node ended: completed, it counts as a comparison too.
    public mutating func answeredSession(from address: PeerAddress?, _ outcome: SessionOutcome) -> [GossipDirective] {
        guard outcome.completed else { return [] }
        return earnedSync()
    }

    /// A peer told this node its tree hash. If it differs, a full session with that peer settles it
    /// (a bounded number at once: the periodic round picks up the rest).
    public mutating func announced(by address: PeerAddress, theirHash: Hash256, ourHash: Hash256, nowMs: UInt64) -> [GossipDirective] {
        guard theirHash != ourHash, let peer = peers[address], !peer.sessionInFlight,
            announcedSessions < config.announcedSessionsInFlight
        else { return [] }
        let out = want(session: address, "its tree hash differs")
        if !out.isEmpty {
            announcedSessions += 1
            peers[address]?.sessionAnnounced = true
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

    private var fanout: Int { config.fanout(peers: peers.count) }

    private mutating func pushEnded(_ address: PeerAddress) {
        guard peers[address] != nil else { return }  // it left: its pushes were uncounted then
        peers[address]!.pushesInFlight -= 1
        inFlightTotal -= 1
    }

    private mutating func setRepair(_ address: PeerAddress, _ atMs: UInt64?) {
        peers[address]?.repairAtMs = atMs
        if atMs == nil { repairing.remove(address) } else { repairing.insert(address) }
    }

    private mutating func earnedSync() -> [GossipDirective] {
        keyStates.setDefault(.synced) ? [.defaultState(.synced)] : []
    }

    /// Starts a session with the peer, or remembers to once the running one ends.
    private mutating func want(session address: PeerAddress, _ reason: String) -> [GossipDirective] {
        guard var peer = peers[address] else { return [] }
        if peer.sessionInFlight {
            if peer.sessionWanted == nil { peer.sessionWanted = reason }
            peers[address] = peer
            return []
        }
        peer.sessionInFlight = true
        peer.pendingAtSessionStart = keyStates.pendingPush
        peers[address] = peer
        return [.startSession(address, reason: reason)]
    }

    private mutating func enqueue(_ key: Key, for address: PeerAddress) -> [GossipDirective] {
        guard var peer = peers[address], peer.queued.insert(key).inserted else { return [] }
        peer.queue.append(key)
        waiting.insert(address)
        if peer.queue.count > config.queueLimit {
            // Too far behind for pushes: a full session catches the peer up instead.
            counters.queueOverflows += 1
            peer.queue = []
            peer.queued = []
            peers[address] = peer
            waiting.remove(address)
            return want(session: address, "push queue overflowed")
        }
        peers[address] = peer
        return []
    }

    /// Sends queued keys, within the per-peer and overall limits.
    private mutating func pump(nowMs: UInt64) -> [GossipDirective] {
        var out: [GossipDirective] = []
        var inFlight = inFlightTotal
        defer { inFlightTotal = inFlight }
        for address in waiting.sorted() where inFlight < config.pushesInFlight {
            guard var peer = peers[address] else { continue }
            while !peer.queue.isEmpty, peer.pushesInFlight < config.pushesPerPeer, inFlight < config.pushesInFlight {
                let batch = Array(peer.queue.prefix(config.pushBatch))
                peer.queue.removeFirst(batch.count)
                peer.queued.subtract(batch)
                peer.pushesInFlight += 1
                inFlight += 1
                out.append(.push(address, keys: batch))
            }
            if peer.queue.isEmpty { waiting.remove(address) }
            peers[address] = peer
        }
        return out
    }

    /// Up to `count` distinct random peers, not `excluded`.
    private mutating func pick(_ count: Int, excluding excluded: PeerAddress?) -> [PeerAddress] {
        let available = order.count - (excluded.map { peers[$0] != nil } == true ? 1 : 0)
        guard count < available else { return order.filter { $0 != excluded }.shuffled(using: &random) }
        // Few out of many (the usual case): draw indexes until enough distinct ones, without a
        // pass over every peer.
        var chosen: Set<Int> = []
        var out: [PeerAddress] = []
        while out.count < count {
            let i = Int.random(in: 0..<order.count, using: &random)
            guard order[i] != excluded, chosen.insert(i).inserted else { continue }
            out.append(order[i])
        }
        return out
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
