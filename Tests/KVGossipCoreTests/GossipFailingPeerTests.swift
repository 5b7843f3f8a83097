import Testing
@testable import KVGossipCore

/// A peer that fails (down, or across a partition) costs one repair attempt per growing delay,
/// not a push per record; and the push queues stay bounded however many peers there are.
@Suite struct GossipFailingPeerTests {
    typealias T = GossipInstanceTests

    /// What waited for a peer whose push failed is dropped: the repair session does that work
    /// (Docs/architecture.md §Gossip).
    @Test func aFailedPushDropsThePeersQueue() {
        var g = T.instance(members: 4)
        var down: PeerAddress?
        for i in 0 ..< 3 {
            // Two pushes in flight to a peer at most: the third write's key waits in its queue.
            let d = g.committed(try! Key("/q\(i)"), digest: T.digest, origin: .local, nowMs: 1)
            if down == nil { down = T.pushes(d).keys.sorted().first }
        }
        let peer = down!
        #expect(g.peer(peer)?.queue.isEmpty == false, "a key waits behind the pushes in flight")
        let directives = g.pushFailed(to: peer, nowMs: 1_000)
        #expect(T.pushes(directives)[peer] == nil, "nothing more is pushed to it")
        #expect(g.peer(peer)?.queue.isEmpty == true)
    }

    /// The defaults Docs name: a writer's pushes all leave at once (as many in flight as it mails
    /// directly), announcements a tenth of a second later, two announced sessions at once.
    @Test func theDefaultsDocsName() {
        let c = GossipConfig()
        #expect(c.pushesInFlight >= c.directMailPeers && c.announceDelayMs == 100 && c.announcedSessionsInFlight == 2)
        #expect(c.pushesPerPeer == 2 && c.repairDelayMs == 1_000)
    }

    @Test(arguments: [false, true]) func aPeerWhosePushFailedGetsNoPushesUntilItAnswersAgain(sessionOpenedByThePeer: Bool) {
        var g = T.instance(members: 4) { $0.fanout = 2 }
        let first = T.pushes(g.committed(T.key, digest: T.digest, origin: .local, nowMs: 0))
        let down = first.keys.sorted()[0]
        _ = g.pushFailed(to: down, nowMs: 1_000)
        for i in 0 ..< 40 {
            let d = g.committed(try! Key("/k\(i)"), digest: T.digest, origin: .local, nowMs: 1_001)
            #expect(T.pushes(d)[down] == nil, "no pushes to a failing peer")
            #expect(!T.announcements(d).contains(down))
            for (peer, keys) in T.pushes(d) { _ = g.pushAnswered(by: peer, keys.map { ($0, T.digest, true) }, nowMs: 1_001) }
        }
        // The repair session that brings it back: completed, the peer takes pushes again. So does
        // a session the peer opened (an agent that restarted), in `sessionOpenedByThePeer`.
        #expect(T.sessions(g.tick(nowMs: 2_000)) == [down])
        if sessionOpenedByThePeer {
            _ = g.sessionEnded(with: down, .failed("refused"), nowMs: 2_010)
            _ = g.answeredSession(from: down, SessionOutcome(completed: true, equalAtEnd: true))
        } else {
            _ = g.sessionEnded(with: down, SessionOutcome(completed: true, equalAtEnd: true), nowMs: 2_010)
        }
        var pushedTo: Set<PeerAddress> = []
        for i in 0 ..< 40 {
            let d = g.committed(try! Key("/again\(i)"), digest: T.digest, origin: .local, nowMs: 3_000)
            for (peer, keys) in T.pushes(d) {
                pushedTo.insert(peer)
                _ = g.pushAnswered(by: peer, keys.map { ($0, T.digest, true) }, nowMs: 3_000)
            }
        }
        #expect(pushedTo.contains(down))
    }

    @Test func repairsOfAPeerThatStaysDownBackOffToThePeriodicInterval() {
        var g = T.instance(members: 1) {
            $0.repairDelayMs = 1_000
            $0.antiEntropyIntervalMs = 30_000
        }
        let peer = T.address(1)
        _ = g.pushFailed(to: peer, nowMs: 0)
        var now: UInt64 = 0
        var waits: [UInt64] = []
        for _ in 0 ..< 8 {
            // The repair comes due, its session starts and fails: the next one waits twice as long.
            let due = g.peer(peer)!.repairAtMs!
            waits.append(due - now)
            _ = g.tick(nowMs: due)
            now = due + 5
            _ = g.sessionEnded(with: peer, .failed("unreachable"), nowMs: now)
        }
        #expect(waits == [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000], "capped at the periodic interval")
        // A failed periodic or repair session alone (no push) also schedules one.
        var h = T.instance(members: 1)
        #expect(h.sessionEnded(with: peer, .failed("refused"), nowMs: 100).isEmpty)
        #expect(T.sessions(h.tick(nowMs: 1_100)) == [peer])
    }

    @Test func pushQueuesAreBoundedInTotalAcrossPeers() {
        var g = T.instance(members: 200) {
            $0.fanout = 3
            $0.pushesPerPeer = 1
            $0.pushesInFlight = 1
            $0.queueLimit = 1_000
            $0.queuedKeysLimit = 50
        }
        var sessions: [PeerAddress] = []
        for i in 0 ..< 100 { sessions += T.sessions(g.committed(try! Key("/q\(i)"), digest: T.digest, origin: .local, nowMs: UInt64(i))) }
        // One push flies; the rest queue until the total passes 50, then queues become sessions.
        #expect(g.counters.queueOverflows > 0)
        #expect(!sessions.isEmpty)
        let queued = g.peers.values.map(\.queue.count).reduce(0, +)
        #expect(queued <= 50, "\(queued) keys queued")
    }

    @Test func readyPeersAreServedInTurn() {
        var g = T.instance(members: 3) {
            $0.fanout = 3
            $0.pushBatch = 1
            $0.pushesPerPeer = 1
            $0.pushesInFlight = 1
        }
        // Three peers, one push in flight at a time: answers hand the slot on to the next peer
        // rather than back to the one that just finished.
        var order: [PeerAddress] = []
        for i in 0 ..< 3 { order += T.pushes(g.committed(try! Key("/r\(i)"), digest: T.digest, origin: .local, nowMs: 0)).keys }
        for _ in 0 ..< 8 {
            let next = T.pushes(g.pushAnswered(by: order.last!, [], nowMs: 1)).keys
            order += next
        }
        #expect(order.count == 9)
        for i in 3 ..< order.count { #expect(order[i] != order[i - 1]) }
        #expect(Set(order).count == 3)
    }
}

/// When members join, the cluster reconciles with each of them a few times in all, not once per
/// node: a healed partition makes half a fleet join the other half at once.
@Suite struct GossipJoinTests {
    static func table(_ range: Range<Int>) -> PeerTable {
        PeerTable(members: range.map { i in (name: "n\(i)", address: PeerAddress(host: "10.1.\(i / 256).\(i % 256)", port: 7947)) }, statics: [])
    }

    @Test func aHalfThatRejoinsGetsAFewSessionsPerNodeNotOnePerMember() {
        var total = 0
        for seed in 0 ..< 20 {
            var g = GossipInstance(expectsPeers: true, seed: UInt64(seed))
            let own = PeerAddress(host: "10.1.0.0", port: 7947)
            _ = g.setPeers(Self.table(0 ..< 500), ownAddress: own, nowMs: 0)
            for a in GossipInstanceTests.sessions(g.start(nowMs: 0)) { _ = g.sessionEnded(with: a, SessionOutcome(completed: true, equalAtEnd: true), nowMs: 0) }
            total += GossipInstanceTests.sessions(g.setPeers(Self.table(0 ..< 1000), ownAddress: own, nowMs: 1)).count
        }
        // 500 joined of 999 peers, 3 sessions per joined member in all: 1.5 per node on average.
        #expect((10 ... 60).contains(total), "\(total) sessions over 20 nodes")
    }

    @Test func inASmallClusterEveryNodeReconcilesWithAMemberThatJoins() {
        var g = GossipInstanceTests.instance(members: 2)
        let joined = GossipInstanceTests.sessions(g.setPeers(members: (1 ... 3).map { ("n\($0)", GossipInstanceTests.address($0)) }, statics: [], nowMs: 5))
        #expect(joined == [GossipInstanceTests.address(3)])
    }
}

/// A peer that leaves while a push or session to it is in flight, and comes back before those end
/// (Serf's reconnect is faster than a stalled session's timeout): the old ends must not act on the
/// new peer, and an announcement session that leaves with it must not hold a slot for ever.
@Suite struct GossipRejoinTests {
    typealias T = GossipInstanceTests
    static let members = (1 ... 3).map { ("n\($0)", GossipInstanceTests.address($0)) }

    @Test func endsFromBeforeALeaveDoNotTouchThePeerThatRejoined() {
        var g = T.instance(members: 3) { $0.fanout = 3 }
        let p = T.address(1)
        _ = g.committed(T.key, digest: T.digest, origin: .local, nowMs: 0)  // a push to p in flight
        _ = g.setPeers(members: Array(Self.members.dropFirst()), statics: [], nowMs: 10)  // p leaves
        _ = g.setPeers(members: Self.members, statics: [], nowMs: 20)  // and comes back
        // The old push fails late: the rejoined peer is not marked failing, nor its counts changed.
        _ = g.pushFailed(to: p, nowMs: 30)
        #expect(g.peer(p)?.failuresInARow == 0 && g.peer(p)?.pushesInFlight == 0 && g.peer(p)?.repairAtMs == nil)
        let d = g.committed(try! Key("/after"), digest: T.digest, origin: .local, nowMs: 40)
        #expect(T.pushes(d)[p] != nil, "the rejoined peer takes pushes")
    }

    @Test func anAnnouncementSessionWithAPeerThatLeftFreesItsSlot() {
        var g = T.instance(members: 3) { $0.announcedSessionsInFlight = 1 }
        let p = T.address(1)
        #expect(T.sessions(g.announced(by: p, theirHash: T.digest, ourHash: T.digest2, nowMs: 0)) == [p])
        _ = g.setPeers(members: Array(Self.members.dropFirst()), statics: [], nowMs: 10)  // p leaves
        _ = g.sessionEnded(with: p, .failed("stalled"), nowMs: 20)
        let q = T.address(2)
        #expect(T.sessions(g.announced(by: q, theirHash: T.digest, ourHash: T.digest2, nowMs: 30)) == [q], "the slot is free again")
    }

    @Test func aSessionDoesNotCancelTheRepairOfAPushThatFailedWhileItRan() {
        var g = T.instance(members: 1)
        let p = T.address(1)
        _ = g.reconcile(with: p, reason: "test")  // a session runs
        _ = g.committed(T.key, digest: T.digest, origin: .local, nowMs: 10)  // its push …
        _ = g.pushFailed(to: p, nowMs: 20)  // … fails while the session runs
        _ = g.sessionEnded(with: p, SessionOutcome(completed: true, equalAtEnd: true), nowMs: 30)
        #expect(T.sessions(g.tick(nowMs: 1_020)) == [p], "the repair still runs")
    }
}
