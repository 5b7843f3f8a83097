import KVGossipCore

/// What one simulated cluster is made of.
public struct SimulationConfig: Sendable {
    public var nodes: Int
    /// The rules every node runs, exactly as an agent does.
    public var gossip = GossipConfig()
    public var network = NetworkModel()
    /// Round trips of a full session between trees that differ (the Merkle walk down to the
    /// differing keys: a handful for a few keys; the bench measures 6–7 on real stores). Equal
    /// trees take one (the hashes are compared and the session ends).
    public var sessionRoundTrips = 5
    /// Bytes of one record on the wire (a short value, its signature and a one-grant pool).
    public var recordBytes = 350
    public var seed: UInt64

    public init(nodes: Int, seed: UInt64) {
        self.nodes = nodes
        self.seed = seed
    }
}

/// Messages and bytes sent, by kind, across the whole cluster.
public struct Traffic: Sendable, Equatable {
    public var pushes = 0
    public var pushAnswers = 0
    public var announcements = 0
    public var sessions = 0
    /// Frames of full sessions (views both ways, and their record batches).
    public var sessionFrames = 0
    public var bytes = 0

    public var messages: Int { pushes + pushAnswers + announcements + sessionFrames }

    static func - (a: Traffic, b: Traffic) -> Traffic {
        Traffic(
            pushes: a.pushes - b.pushes, pushAnswers: a.pushAnswers - b.pushAnswers, announcements: a.announcements - b.announcements,
            sessions: a.sessions - b.sessions, sessionFrames: a.sessionFrames - b.sessionFrames, bytes: a.bytes - b.bytes)
    }
}

/// A cluster of `GossipInstance`s, each with a toy store of key versions, joined by a simulated
/// network in simulated time: the gossip rules of the agent, run at any scale in one process and
/// replayed exactly from a seed (Docs/architecture.md §Simulation). The shell's part is played
/// here: directives become messages with latencies, and messages become the instance's events.
public final class Simulation {
    public let config: SimulationConfig
    /// Simulated time since the start, in microseconds.
    public private(set) var nowUs: UInt64 = 0
    public private(set) var traffic = Traffic()

    struct Node {
        var gossip: GossipInstance
        var versions: [Int: UInt64] = [:]
        var hash = TreeHash()
        var wakeAt: UInt64?
    }

    enum Event {
        case wake(Int)
        case write(node: Int, key: Int)
        case push(from: Int, to: Int, records: [Version])
        case pushAnswer(to: Int, from: Int, records: [Version])
        case pushFailed(pusher: Int, peer: Int)
        case announce(from: Int, to: Int, hash: TreeHash)
        case sessionEnd(initiator: Int, responder: Int)
        case sessionFailed(initiator: Int, responder: Int)
    }

    typealias Version = (key: Int, version: UInt64)

    var nodes: [Node] = []
    let addresses: [PeerAddress]
    private var index: [PeerAddress: Int] = [:]
    private var keys: [Key] = []
    private var keyIndex: [Key: Int] = [:]
    private var queue = TimedQueue<Event>()
    private var random: SplitMix64
    private var nextVersion: UInt64 = 0
    /// Which nodes can reach which; nil: all.
    private var sides: [Bool]?
    /// The one write whose spread is being timed.
    private var watched: (key: Int, version: UInt64, reachedAt: [UInt64?], count: Int)?
    /// The tree hash every node should end with, and how many hold it.
    private var target: (hash: TreeHash, count: Int)?
    private let epochMs: UInt64 = 1_800_000_000_000

    public init(_ config: SimulationConfig) {
        self.config = config
        random = SplitMix64(seed: config.seed)
        addresses = (0..<config.nodes).map { i in PeerAddress(host: "10.\(i >> 16).\((i >> 8) & 255).\(i & 255)", port: 7947) }
        for (i, a) in addresses.enumerated() { index[a] = i }
        // One table for all: each node's copy shares its storage and skips the node itself, so
        // memory grows with N rather than N² (10,000 nodes fit).
        let everyone = PeerTable(members: addresses.map { (name: $0.host, address: $0) }, statics: [])
        for i in 0..<config.nodes {
            var gossip = GossipInstance(config: config.gossip, expectsPeers: true, seed: random.next())
            _ = gossip.setPeers(everyone, ownAddress: addresses[i], nowMs: epochMs)
            nodes.append(Node(gossip: gossip))
        }
        for i in 0..<config.nodes { execute(nodes[i].gossip.start(nowMs: nowMs), at: i) }
    }

    var nowMs: UInt64 { epochMs + nowUs / 1000 }

    // MARK: Running

    /// Runs events up to `us` (simulated µs since the start), or until `stop` holds.
    public func run(untilUs us: UInt64, stop: (() -> Bool)? = nil) {
        while let t = queue.nextTime, t <= us {
            let (at, event) = queue.pop()!
            nowUs = at
            handle(event)
            if let stop, stop() { return }
        }
        nowUs = max(nowUs, us)
    }

    public func run(forMs ms: Double, stop: (() -> Bool)? = nil) {
        run(untilUs: nowUs + UInt64(ms * 1000), stop: stop)
    }

    /// Whether every node holds the same tree.
    public var converged: Bool { nodes.allSatisfy { $0.hash == nodes[0].hash } }

    // MARK: Events

    private func handle(_ event: Event) {
        switch event {
        case .wake(let i):
            guard nodes[i].wakeAt == nowUs else { return }  // superseded by an earlier one
            nodes[i].wakeAt = nil
            execute(nodes[i].gossip.tick(nowMs: nowMs), at: i)
        case .write(let i, let key):
            nextVersion += 1
            apply([(key, nextVersion)], at: i, origin: .local)
        case .push(let from, let to, let records):
            apply(records, at: to, origin: .pushed(by: addresses[from]))
            traffic.pushAnswers += 1
            traffic.bytes += 32 + 40 * records.count
            send(.pushAnswer(to: from, from: to, records: records), from: to, to: from, orElse: .pushFailed(pusher: from, peer: to))
        case .pushAnswer(let to, let from, let records):
            let results = records.map { (key: keys[$0.key], digest: Self.digest($0), held: true) }
            execute(nodes[to].gossip.pushAnswered(by: addresses[from], results, nowMs: nowMs), at: to)
        case .pushFailed(let pusher, let peer):
            execute(nodes[pusher].gossip.pushFailed(to: addresses[peer], nowMs: nowMs), at: pusher)
        case .announce(let from, let to, let hash):
            execute(nodes[to].gossip.announced(by: addresses[from], theirHash: hash.digest, ourHash: nodes[to].hash.digest, nowMs: nowMs), at: to)
        case .sessionEnd(let a, let b):
            guard reachable(a, b) else { return handle(.sessionFailed(initiator: a, responder: b)) }
            exchange(initiator: a, responder: b)
        case .sessionFailed(let a, let b):
            execute(nodes[a].gossip.sessionEnded(with: addresses[b], .failed("unreachable"), nowMs: nowMs), at: a)
        }
    }

    /// Both sides end a session with the newer version of every key: the initiator's fetched
    /// records are `pulled` (not spread further), the ones it sent arrive at the responder as
    /// `handedOver` by it (Docs/architecture.md §Gossip).
    private func exchange(initiator a: Int, responder b: Int) {
        if nodes[a].hash != nodes[b].hash {
            let toA = nodes[b].versions.filter { (nodes[a].versions[$0.key] ?? 0) < $0.value }.map { ($0.key, $0.value) }
            let toB = nodes[a].versions.filter { (nodes[b].versions[$0.key] ?? 0) < $0.value }.map { ($0.key, $0.value) }
            traffic.sessionFrames += (toA.count + 255) / 256 + (toB.count + 255) / 256
            traffic.bytes += (toA.count + toB.count) * config.recordBytes
            apply(toA.sorted { $0.0 < $1.0 }, at: a, origin: .pulled(from: addresses[b]))
            apply(toB.sorted { $0.0 < $1.0 }, at: b, origin: .handedOver(by: addresses[a]))
        }
        let outcome = SessionOutcome(completed: true, equalAtEnd: true)
        execute(nodes[a].gossip.sessionEnded(with: addresses[b], outcome, nowMs: nowMs), at: a)
        execute(nodes[b].gossip.answeredSession(from: addresses[a], outcome), at: b)
    }

    private func apply(_ records: [Version], at i: Int, origin: CommitOrigin) {
        for r in records {
            let old = nodes[i].versions[r.key]
            guard (old ?? 0) < r.version else { continue }
            let wasTarget = target.map { $0.hash == nodes[i].hash } ?? false
            if let old { nodes[i].hash.toggle(key: r.key, version: old) }
            nodes[i].hash.toggle(key: r.key, version: r.version)
            nodes[i].versions[r.key] = r.version
            if let t = target {
                let isTarget = t.hash == nodes[i].hash
                if wasTarget != isTarget { target!.count += isTarget ? 1 : -1 }
            }
            if let w = watched, w.key == r.key, r.version >= w.version, w.reachedAt[i] == nil {
                watched!.reachedAt[i] = nowUs
                watched!.count += 1
            }
            execute(nodes[i].gossip.committed(keys[r.key], digest: Self.digest(r), origin: origin, nowMs: nowMs), at: i)
        }
    }

    // MARK: Directives

    private func execute(_ directives: [GossipDirective], at i: Int) {
        for directive in directives {
            switch directive {
            case .startSession(let address, _):
                startSession(i, index[address]!)
            case .push(let address, let pushed):
                let j = index[address]!
                let records = pushed.compactMap { key -> Version? in
                    let k = keyIndex[key]!
                    return nodes[i].versions[k].map { (k, $0) }
                }
                traffic.pushes += 1
                traffic.bytes += 64 + records.count * config.recordBytes
                send(.push(from: i, to: j, records: records), from: i, to: j, orElse: .pushFailed(pusher: i, peer: j))
            case .announce(let address):
                let j = index[address]!
                traffic.announcements += 1
                traffic.bytes += 100
                send(.announce(from: i, to: j, hash: nodes[i].hash), from: i, to: j, orElse: nil)
            case .keyStates, .defaultState:
                break
            }
        }
        guard let next = nodes[i].gossip.nextWakeMs else { return }
        let at = max(nowUs, (next - min(next, epochMs)) * 1000)
        if nodes[i].wakeAt.map({ at < $0 }) ?? true {
            nodes[i].wakeAt = at
            queue.schedule(.wake(i), at: at)
        }
    }

    private func startSession(_ a: Int, _ b: Int) {
        traffic.sessions += 1
        guard reachable(a, b) else {
            queue.schedule(.sessionFailed(initiator: a, responder: b), at: nowUs + UInt64(config.network.unreachableAfterMs * 1000))
            return
        }
        let trips = nodes[a].hash == nodes[b].hash ? 1 : config.sessionRoundTrips
        var duration: UInt64 = 0
        for _ in 0..<trips { duration += config.network.delay(using: &random) + config.network.delay(using: &random) }
        traffic.sessionFrames += 2 * trips
        traffic.bytes += 2 * trips * 600
        queue.schedule(.sessionEnd(initiator: a, responder: b), at: nowUs + duration)
    }

    /// Sends `event` to `to`; across a partition the sender gets `failure` (if any) once its
    /// timeout passes.
    private func send(_ event: Event, from: Int, to: Int, orElse failure: Event?) {
        if reachable(from, to) {
            queue.schedule(event, at: nowUs + config.network.delay(using: &random))
        } else if let failure {
            queue.schedule(failure, at: nowUs + UInt64(config.network.unreachableAfterMs * 1000))
        }
    }

    private func reachable(_ a: Int, _ b: Int) -> Bool {
        sides.map { $0[a] == $0[b] } ?? true
    }

    // MARK: Keys

    func newKey() -> Int {
        let key = try! Key("/sim/k\(keys.count)")
        keyIndex[key] = keys.count
        keys.append(key)
        return keys.count - 1
    }

    static func digest(_ r: Version) -> Hash256 {
        var g = entryRandom(key: r.key, version: r.version)
        return Hash256(bytes: g.bytes(32))!
    }

    // MARK: Scenarios

    /// One write on `origin`, timed to every node.
    public func spreadOfOneWrite(from origin: Int, windowMs: Double = 2000, limitMs: Double = 120_000) -> WriteSpread {
        let key = newKey()
        let start = nowUs
        watched = (key, nextVersion + 1, Array(repeating: nil, count: nodes.count), 0)
        let before = traffic
        queue.schedule(.write(node: origin, key: key), at: nowUs)
        run(forMs: windowMs)
        let during = traffic - before
        if watched!.count < nodes.count { run(untilUs: start + UInt64(limitMs * 1000)) { self.watched!.count == self.nodes.count } }
        let times = watched!.reachedAt.compactMap { $0 }.map { Double($0 - start) / 1000 }.sorted()
        watched = nil
        return WriteSpread(nodes: nodes.count, reachedMs: times, traffic: during)
    }

    /// Splits the cluster in two halves, writes `writesPerSide` new keys on random nodes of each
    /// side (one per millisecond), lets each side settle for `partitionMs`, heals, and times until
    /// every node holds the same tree.
    public func partitionAndHeal(writesPerSide: Int, partitionMs: Double = 5000, limitMs: Double = 300_000) -> Healing {
        let half = nodes.count / 2
        sides = (0..<nodes.count).map { $0 < half }
        for w in 0..<writesPerSide {
            let at = nowUs + UInt64(w) * 1000
            queue.schedule(.write(node: Int.random(in: 0..<half, using: &random), key: newKey()), at: at)
            queue.schedule(.write(node: Int.random(in: half..<nodes.count, using: &random), key: newKey()), at: at)
        }
        run(forMs: partitionMs)
        sides = nil
        let healedAt = nowUs
        var union: [Int: UInt64] = [:]
        for n in nodes { union.merge(n.versions) { max($0, $1) } }
        var hash = TreeHash()
        for (k, v) in union { hash.toggle(key: k, version: v) }
        target = (hash, nodes.filter { $0.hash == hash }.count)
        let before = traffic
        run(untilUs: healedAt + UInt64(limitMs * 1000)) { self.target!.count == self.nodes.count }
        let converged = target!.count == nodes.count ? Double(nowUs - healedAt) / 1000 : nil
        target = nil
        return Healing(convergedMs: converged, traffic: traffic - before)
    }
}

/// How one write spread: when each node first held it (ms after the write, sorted), and what the
/// cluster sent in the window after it.
public struct WriteSpread: Sendable {
    public let nodes: Int
    public let reachedMs: [Double]
    public let traffic: Traffic

    /// When `fraction` of all nodes held the write; nil if they never did within the limit.
    public func time(toReach fraction: Double) -> Double? {
        let needed = Int((Double(nodes) * fraction).rounded(.up))
        return reachedMs.count >= needed ? reachedMs[needed - 1] : nil
    }
}

public struct Healing: Sendable {
    /// From healing to one tree hash everywhere; nil if not within the limit.
    public let convergedMs: Double?
    public let traffic: Traffic
}

/// The generator of one simulated (key, version): the same pair always draws the same bytes, so a
/// version's digest and its share of a tree hash are fixed by the pair alone.
func entryRandom(key: Int, version: UInt64) -> SplitMix64 {
    SplitMix64(seed: UInt64(key) << 40 ^ version)
}

/// A simulated node's tree hash: an order-independent fold of (key, version) entries, cheap to
/// update. Equal sets give equal hashes (what the real Merkle root guarantees too).
struct TreeHash: Equatable {
    var a: UInt64 = 0
    var b: UInt64 = 0

    mutating func toggle(key: Int, version: UInt64) {
        var g = entryRandom(key: key, version: version)
        a ^= g.next()
        b ^= g.next()
    }

    var digest: Hash256 {
        var bytes: [UInt8] = []
        for word in [a, b, a ^ 0x5555, b ^ 0x5555] { for s in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: word >> UInt64(s))) } }
        return Hash256(bytes: bytes)!
    }
}
