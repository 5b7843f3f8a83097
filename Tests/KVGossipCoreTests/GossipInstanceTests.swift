import Testing
@testable import KVGossipCore

/// Every rule of `GossipInstance`, with a seeded generator and times passed in: no process, no
/// socket, no sleep.
@Suite struct GossipInstanceTests {
    static func address(_ i: Int) -> PeerAddress { PeerAddress(host: "10.0.0.\(i)", port: 7947) }
    static let key = try! Key("/app/k")
    static let digest = Hash256.of([1])
    static let digest2 = Hash256.of([2])

    /// An instance named n0 with `n` members (n1 at 10.0.0.1 …), started at t = 0, its
    /// configuration the default as `configure` changes it. Its ring (names as text) starts n1,
    /// n10, n11 …
    static func instance(
        members n: Int, statics: [PeerAddress] = [], _ configure: (inout GossipConfig) -> Void = { _ in }
    ) -> GossipInstance {
        var config = GossipConfig()
        configure(&config)
        var g = GossipInstance(config: config, expectsPeers: true, seed: 42, name: "n0")
        _ = g.setPeers(members: (1...max(1, n)).prefix(n).map { ("n\($0)", address($0)) }, statics: statics, nowMs: 0)
        _ = g.start(nowMs: 0)
        // Settle the start-up sessions so tests see only their own directives.
        for a in g.peers.keys { _ = g.sessionEnded(with: a, SessionOutcome(completed: true, equalAtEnd: true), nowMs: 0) }
        return g
    }

    static func pushes(_ d: [GossipDirective]) -> [PeerAddress: [Key]] {
        var out: [PeerAddress: [Key]] = [:]
        for case .push(let a, let keys) in d { out[a, default: []] += keys }
        return out
    }

    static func announcements(_ d: [GossipDirective]) -> [PeerAddress] {
        d.compactMap { if case .announce(let a) = $0 { a } else { nil } }
    }

    static func sessions(_ d: [GossipDirective]) -> [PeerAddress] {
        d.compactMap { if case .startSession(let a, _) = $0 { a } else { nil } }
    }

    /// A fleet node's table lists thousands of peers; the simulator gives every node one shared
    /// table that lists the node itself. The node never picks itself, and keeps state only for
    /// the peers it is dealing with now.
    @Test func aSharedTableListingThisNodeIsNeverPickedAndKeepsStateOnlyForBusyPeers() {
        let addresses = (0 ..< 1000).map { PeerAddress(host: "10.0.\($0 / 256).\($0 % 256)", port: 7947) }
        let table = PeerTable(members: addresses.map { ($0.host, $0) }, statics: [])
        let own = addresses[17]
        var g = GossipInstance(expectsPeers: true, seed: 3)
        _ = g.setPeers(table, ownAddress: own, nowMs: 0)
        #expect(g.peerCount == 999 && !g.isPeer(own) && g.peer(own) == nil && g.peers.count == 999)
        for a in Self.sessions(g.start(nowMs: 0)) { _ = g.sessionEnded(with: a, SessionOutcome(completed: true, equalAtEnd: true), nowMs: 0) }
        let remembered = g.states.count  // the start-up session's peer: its last sync
        var chosen = Set<PeerAddress>()
        for i in 0 ..< 300 {
            let key = try! Key("/k\(i)")
            let d = g.committed(key, digest: Self.digest, origin: .local, nowMs: UInt64(i))
            for (peer, keys) in Self.pushes(d) {
                chosen.insert(peer)
                _ = g.pushAnswered(by: peer, keys.map { (key: $0, digest: Self.digest, held: true) }, nowMs: UInt64(i))
            }
            for a in Self.announcements(g.tick(nowMs: UInt64(i) + 1_000)) { chosen.insert(a) }
        }
        #expect(!chosen.contains(own))
        #expect(chosen.count > 500, "pushes and announcements spread over the table: \(chosen.count)")
        #expect(g.states.count == remembered, "answered pushes leave nothing behind: \(g.states.count) peers with state")
    }

    @Test func aLocalWriteIsPendingAndPushedToFanoutPeers() {
        var g = Self.instance(members: 5) { $0.fanout = 3 }
        let d = g.committed(Self.key, digest: Self.digest, origin: .local, nowMs: 10)
        #expect(Self.pushes(d).count == 3 && Self.pushes(d).values.allSatisfy { $0 == [Self.key] })
        #expect(d.contains(.keyStates([Self.key: .pendingPush])))
        #expect(g.keyStates.state(of: Self.key) == .pendingPush)
    }

    @Test func aPushedRecordIsForwardedToOthersThanItsSenderAndAPulledOneNot() {
        var g = Self.instance(members: 4) { $0.fanout = 3 }
        let sender = Self.address(2)
        let d = g.committed(Self.key, digest: Self.digest, origin: .pushed(by: sender), nowMs: 10)
        let targets = Set(Self.pushes(d).keys)
        #expect(targets.count == 3 && !targets.contains(sender), "every peer but the sender: \(targets)")
        #expect(g.keyStates.state(of: Self.key) == .synced, "a record from elsewhere is not pending here")
        #expect(g.committed(try! Key("/other"), digest: Self.digest, origin: .pulled(from: sender), nowMs: 11).isEmpty)
    }

    @Test func inAFullMeshAPushedRecordIsNotForwardedButAnnounced() {
        // Three peers, fanout 3: the writer pushed to every node, so a receiver's forward would
        // only be a duplicate for a node that has it.
        var g = Self.instance(members: 3)
        #expect(g.config.writeFanout(peers: 3) == 3)
        let d = g.committed(Self.key, digest: Self.digest, origin: .pushed(by: Self.address(2)), nowMs: 10)
        #expect(Self.pushes(d).isEmpty, "no forward: \(d)")
        #expect(g.counters.forwarded == 0)
        // The new tree hash still goes out, for a node the sender does not know: to every peer but
        // the sender, which holds the record.
        #expect(Set(Self.announcements(g.tick(nowMs: 10 + g.config.announceDelayMs))) == [Self.address(1), Self.address(3)])
        // A local write goes to every peer, and so needs no announcement after it.
        #expect(Self.pushes(g.committed(try! Key("/app/mine"), digest: Self.digest2, origin: .local, nowMs: 100)).count == 3)
        #expect(Self.announcements(g.tick(nowMs: 100 + g.config.announceDelayMs)).isEmpty)
    }

    @Test func upToDirectMailSizeAWriterPushesToEveryPeerAndNobodyForwards() {
        // 19 peers: the write leaves for all of them at once, within the pushes allowed in flight.
        var writer = Self.instance(members: 19)
        #expect(Set(Self.pushes(writer.committed(Self.key, digest: Self.digest, origin: .local, nowMs: 10)).keys) == Set((1...19).map(Self.address)))
        #expect(Self.announcements(writer.tick(nowMs: 10 + writer.config.announceDelayMs)).isEmpty, "every peer was pushed to")
        var receiver = Self.instance(members: 19)
        #expect(Self.pushes(receiver.committed(Self.key, digest: Self.digest, origin: .pushed(by: Self.address(3)), nowMs: 10)).isEmpty)
        // For a node the writer missed, the receivers' announcements: each to the next two on
        // the ring, the sender aside.
        let announced = Self.announcements(receiver.tick(nowMs: 10 + receiver.config.announceDelayMs))
        #expect(announced == [Self.address(1), Self.address(10)], "\(announced)")
        // One peer more than direct mail covers: pushes spread by forwarding again, to four random
        // peers and the next on the ring (n1 after n0), never back to the sender.
        var large = Self.instance(members: 33)
        let forwarded = Self.pushes(large.committed(Self.key, digest: Self.digest, origin: .pushed(by: Self.address(3)), nowMs: 10))
        #expect(Self.isForward(forwarded, sender: Self.address(3), random: large.config.forwardFanout(peers: 33)))
        // With static peers, which may be listed one way (a hub that leaves list), a push says
        // nothing about whom else its sender reached: forwarded.
        // The static peers here are other nodes than the sender: what counts is this node's own.
        var hub = Self.instance(members: 10, statics: (6...10).map(Self.address))
        let fromLeaf = Self.pushes(hub.committed(Self.key, digest: Self.digest, origin: .pushed(by: Self.address(3)), nowMs: 10))
        #expect(Self.isForward(fromLeaf, sender: Self.address(3), random: hub.config.forwardFanout(peers: 10)))
        // So is a push from a sender this node does not know, to as many peers as any forward.
        let fromStranger = Self.pushes(receiver.committed(try! Key("/app/k9"), digest: Self.digest2, origin: .pushed(by: Self.address(99)), nowMs: 20))
        #expect(Self.isForward(fromStranger, sender: Self.address(99), random: receiver.config.forwardFanout(peers: 19)))
    }

    @Test func aSessionsArrivalNamesTheCommitOrigin() {
        let peer = Self.address(3)
        #expect(CommitOrigin(.pushed, from: peer) == .pushed(by: peer))
        #expect(CommitOrigin(.handedOver, from: peer) == .handedOver(by: peer))
        #expect(CommitOrigin(.pulled, from: peer) == .pulled(from: peer))
    }

    @Test func recordsHandedOverInASessionAreForwardedEvenUnderDirectMail() {
        // The session's initiator sent them to this node alone (after a partition heals, say).
        var g = Self.instance(members: 19)
        let d = g.committed(Self.key, digest: Self.digest, origin: .handedOver(by: Self.address(3)), nowMs: 10)
        #expect(Self.isForward(Self.pushes(d), sender: Self.address(3), random: g.config.forwardFanout(peers: 19)))
        #expect(g.counters.forwarded == Self.pushes(d).count)
        // Where a forward would reach every peer, it would only be a duplicate: in a cluster of
        // three, the other peer got it from its writer (a session merely outran that push).
        var small = Self.instance(members: 2)
        #expect(Self.pushes(small.committed(Self.key, digest: Self.digest, origin: .handedOver(by: Self.address(2)), nowMs: 10)).isEmpty)
    }

    @Test func anAnnouncementForRecordsFromTwoSendersLeavesOutNeither() {
        var g = Self.instance(members: 3)
        _ = g.committed(Self.key, digest: Self.digest, origin: .pushed(by: Self.address(2)), nowMs: 10)
        _ = g.committed(try! Key("/app/k2"), digest: Self.digest2, origin: .pushed(by: Self.address(3)), nowMs: 11)
        #expect(Self.announcements(g.tick(nowMs: 10 + g.config.announceDelayMs)) == [Self.address(1), Self.address(2)])
        // The next announcement starts afresh.
        _ = g.committed(try! Key("/app/k3"), digest: Self.digest, origin: .pushed(by: Self.address(2)), nowMs: 200)
        #expect(!Self.announcements(g.tick(nowMs: 200 + g.config.announceDelayMs)).contains(Self.address(2)))
    }

    @Test func aPushFromAPeerThisNodeDoesNotKnowIsForwardedEvenInAFullMesh() {
        var g = Self.instance(members: 3)
        let d = g.committed(Self.key, digest: Self.digest, origin: .pushed(by: Self.address(9)), nowMs: 10)
        #expect(Set(Self.pushes(d).keys) == Set((1...3).map(Self.address)), "its view of the cluster is not this node's")
    }

    @Test func whereTheFanoutReachesEveryPeerPushesAreNotForwarded() {
        let config = GossipConfig()
        #expect((1...28).allSatisfy { !config.forwardsPushes(peers: $0, hasStaticPeers: false) }, "direct mail reaches up to 32 peers")
        // A margin of four: a writer that saw 33 peers pushed to 5 only (4 random, the next on the
        // ring), and a receiver must see
        // five members fewer than it to count on direct mail.
        #expect((29...2_000).allSatisfy { config.forwardsPushes(peers: $0, hasStaticPeers: false) }, "a larger cluster forwards, as the simulations assume")
        #expect((1...4).allSatisfy { !config.forwardsPushes(peers: $0, hasStaticPeers: true) }, "a forward would reach every peer")
        #expect((5...32).allSatisfy { config.forwardsPushes(peers: $0, hasStaticPeers: true) }, "static peers may be listed one way")
        var explicit = GossipConfig()
        explicit.fanout = 1
        #expect(!explicit.forwardsPushes(peers: 1, hasStaticPeers: false) && explicit.forwardsPushes(peers: 2, hasStaticPeers: false))
        #expect(!config.forwardsPushes(peers: 0, hasStaticPeers: false))
    }

    @Test func anAcknowledgementOfTheVersionSentSettlesTheKey() {
        var g = Self.instance(members: 3)
        let d = g.committed(Self.key, digest: Self.digest, origin: .local, nowMs: 10)
        let peer = Self.pushes(d).keys.sorted().first!
        // A newer local version is minted meanwhile: an answer for the older one settles nothing.
        _ = g.committed(Self.key, digest: Self.digest2, origin: .local, nowMs: 11)
        #expect(g.pushAnswered(by: peer, [(Self.key, Self.digest, true)], nowMs: 12).isEmpty || g.keyStates.state(of: Self.key) == .pendingPush)
        #expect(g.keyStates.state(of: Self.key) == .pendingPush)
        let d2 = g.pushAnswered(by: peer, [(Self.key, Self.digest2, false)], nowMs: 13)
        #expect(!d2.contains(.keyStates([Self.key: .synced])) && g.keyStates.state(of: Self.key) == .pendingPush, "refused: still pending")
        let d3 = g.pushAnswered(by: peer, [(Self.key, Self.digest2, true)], nowMs: 14)
        #expect(d3.contains(.keyStates([Self.key: .synced])))
    }

    @Test func aFailedPushIsRepairedByASessionALittleLater() {
        var g = Self.instance(members: 3) { $0.repairDelayMs = 1000 }
        let d = g.committed(Self.key, digest: Self.digest, origin: .local, nowMs: 10)
        let peer = Self.pushes(d).keys.sorted().first!
        #expect(Self.sessions(g.pushFailed(to: peer, nowMs: 20)).isEmpty)
        #expect(Self.sessions(g.tick(nowMs: 500)).isEmpty, "not before the delay")
        #expect(Self.sessions(g.tick(nowMs: 1020)).contains(peer))
        // The completed session settles what was pending when it began.
        let settled = g.sessionEnded(with: peer, SessionOutcome(completed: true, equalAtEnd: true), nowMs: 1100)
        #expect(settled.contains(.keyStates([Self.key: .synced])))
    }

    @Test func syncedIsEarnedOnlyByACompletedSession() {
        var g = GossipInstance(expectsPeers: true, seed: 1)
        _ = g.setPeers(members: [("n1", Self.address(1))], statics: [], nowMs: 0)
        let started = g.start(nowMs: 0)
        #expect(Self.sessions(started) == [Self.address(1)])
        #expect(g.keyStates.defaultState == .unsynced)
        #expect(g.sessionEnded(with: Self.address(1), .failed("unreachable"), nowMs: 5).isEmpty)
        #expect(g.keyStates.defaultState == .unsynced, "an unreachable peer settles nothing")
        #expect(g.peers[Self.address(1)]?.lastError == "unreachable")
        #expect(g.answeredSession(from: Self.address(1), .failed("went away")).isEmpty)
        #expect(g.answeredSession(from: Self.address(1), SessionOutcome(completed: true, equalAtEnd: true)) == [.defaultState(.synced)])
        #expect(g.keyStates.defaultState == .synced)
    }

    @Test func aNodeWithoutPeersIsSyncedAndMintsAreNotPending() {
        var g = GossipInstance(expectsPeers: false, seed: 1)
        _ = g.start(nowMs: 0)
        #expect(g.keyStates.defaultState == .synced)
        #expect(g.committed(Self.key, digest: Self.digest, origin: .local, nowMs: 1).isEmpty)
        #expect(g.keyStates.state(of: Self.key) == .synced)
    }

    @Test func oneSessionPerPeerAtATimeAndASecondReasonWaits() {
        var g = Self.instance(members: 1)
        let peer = Self.address(1)
        g.learnedName("web-1", of: peer)
        #expect(g.peers[peer]?.name == "web-1")
        _ = g.pushFailed(to: peer, nowMs: 0)
        #expect(Self.sessions(g.tick(nowMs: 2000)) == [peer])
        #expect(Self.sessions(g.tick(nowMs: 40_000)).isEmpty, "the periodic round waits for the running session")
        let after = g.sessionEnded(with: peer, SessionOutcome(completed: true, equalAtEnd: true), nowMs: 40_001)
        #expect(Self.sessions(after) == [peer], "then runs")
    }

    @Test func pushesAreBatchedAndBoundedPerPeerAndOverall() {
        var g = Self.instance(members: 1) {
            $0.fanout = 1
            $0.pushBatch = 10
            $0.pushesPerPeer = 2
        }
        var pushes: [[Key]] = []
        for i in 0..<50 {
            for case .push(_, let keys) in g.committed(try! Key("/k/\(i)"), digest: Self.digest, origin: .local, nowMs: UInt64(i)) { pushes.append(keys) }
        }
        #expect(pushes.count == 2, "two in flight to one peer: \(pushes.map(\.count))")
        // As answers come, the queue drains in batches of at most 10.
        let answered = g.pushAnswered(by: Self.address(1), [], nowMs: 60)
        let next = Self.pushes(answered)[Self.address(1)] ?? []
        #expect(next.count == 10)
    }

    @Test func anOverflowingQueueFallsBackToASession() {
        var g = Self.instance(members: 1) {
            $0.fanout = 1
            $0.queueLimit = 5
            $0.pushesPerPeer = 1
        }
        var directives: [GossipDirective] = []
        for i in 0..<8 { directives += g.committed(try! Key("/k/\(i)"), digest: Self.digest, origin: .local, nowMs: UInt64(i)) }
        #expect(g.counters.queueOverflows == 1)
        #expect(Self.sessions(directives) == [Self.address(1)])
    }

    @Test func thePeriodicRoundIsJitteredAroundItsInterval() {
        var g = Self.instance(members: 3)
        var rounds: [UInt64] = []
        var now: UInt64 = 0
        while rounds.count < 20, now < 10_000_000 {
            now = g.nextWakeMs ?? now + 1
            let d = g.tick(nowMs: now)
            for a in Self.sessions(d) {
                rounds.append(now)
                _ = g.sessionEnded(with: a, SessionOutcome(completed: true, equalAtEnd: true), nowMs: now)
            }
        }
        let gaps = zip(rounds, rounds.dropFirst()).map { $1 - $0 }
        #expect(gaps.allSatisfy { (24_000...36_000).contains($0) }, "\(gaps)")
        #expect(Set(gaps).count > 1)
    }

    @Test func startReconcilesWithStaticPeersOneMemberAndThoseThatDiffer() {
        var config = GossipConfig()
        config.joinedSessions = 11  // every node reconciles with a joiner (GossipJoinTests: fewer in a fleet)
        var g = GossipInstance(config: config, expectsPeers: true, seed: 7)
        let statics = [PeerAddress(host: "192.168.1.1", port: 7947)]
        _ = g.setPeers(members: (1...10).map { ("n\($0)", Self.address($0)) }, statics: statics, nowMs: 0)
        let d = g.start(differing: [Self.address(7), Self.address(8)], nowMs: 0)
        let targets = Set(Self.sessions(d))
        #expect(targets.isSuperset(of: [statics[0], Self.address(7), Self.address(8)]))
        #expect(targets.count <= 4)
        // A member that joins later is reconciled with.
        let joined = g.setPeers(members: (1...11).map { ("n\($0)", Self.address($0)) }, statics: statics, nowMs: 5)
        #expect(Self.sessions(joined) == [Self.address(11)])
    }

    @Test func aDifferentAnnouncedHashStartsASessionWithinTheLimit() {
        var g = Self.instance(members: 3) { $0.announcedSessionsInFlight = 1 }
        #expect(g.announced(by: Self.address(1), theirHash: Self.digest, ourHash: Self.digest, nowMs: 1).isEmpty)
        #expect(Self.sessions(g.announced(by: Self.address(1), theirHash: Self.digest2, ourHash: Self.digest, nowMs: 2)) == [Self.address(1)])
        #expect(g.announced(by: Self.address(2), theirHash: Self.digest2, ourHash: Self.digest, nowMs: 3).isEmpty, "one at a time")
        _ = g.sessionEnded(with: Self.address(1), SessionOutcome(completed: true, equalAtEnd: true), nowMs: 4)
        #expect(Self.sessions(g.announced(by: Self.address(2), theirHash: Self.digest2, ourHash: Self.digest, nowMs: 5)) == [Self.address(2)])
    }

    @Test func writersAnnounceTheirNewHashAMomentLater() {
        var g = Self.instance(members: 5) {
            $0.fanout = 1
            $0.announceFanout = 2
            $0.announceDelayMs = 50
        }
        _ = g.committed(Self.key, digest: Self.digest, origin: .local, nowMs: 100)
        #expect(g.tick(nowMs: 120).filter { if case .announce = $0 { true } else { false } }.isEmpty)
        let due = g.tick(nowMs: 150)
        #expect(due.filter { if case .announce = $0 { true } else { false } }.count == 2)
    }

    @Test func fourRandomPeersBesideTheRingAtEverySize() {
        let c = GossipConfig()
        #expect(c.writeFanout(peers: 0) == 0 && c.forwardFanout(peers: 0) == 0)
        #expect(c.writeFanout(peers: 4) == 4 && c.writeFanout(peers: 32) == 32, "direct mail")
        #expect(c.forwardFanout(peers: 3) == 3 && c.forwardFanout(peers: 4) == 4 && c.forwardFanout(peers: 32) == 4)
        #expect(c.writeFanout(peers: 33) == 4 && c.writeFanout(peers: 999) == 4 && c.writeFanout(peers: 9_999) == 4)
    }

    /// Beyond direct mail, a writer and every forwarder push to the next peer on the ring as well
    /// as to random ones, so the nodes the random pushes miss are reached in a chain; the sender
    /// and failing peers are passed over, as for announcements.
    @Test func forwardsGoAlongTheRingToo() {
        // A fleet node on a shared table: 10.0.0.17's successor by name is 10.0.0.18.
        let addresses = (0 ..< 100).map { PeerAddress(host: "10.0.0.\($0)", port: 7947) }
        let table = PeerTable(members: addresses.map { ($0.host, $0) }, statics: [])
        func node(_ configure: (inout GossipConfig) -> Void = { _ in }) -> GossipInstance {
            var config = GossipConfig()
            configure(&config)
            var g = GossipInstance(config: config, expectsPeers: true, seed: 5)
            _ = g.setPeers(table, ownAddress: addresses[17], nowMs: 0)
            for a in Self.sessions(g.start(nowMs: 0)) { _ = g.sessionEnded(with: a, SessionOutcome(completed: true, equalAtEnd: true), nowMs: 0) }
            return g
        }
        var g = node()
        let written = Self.pushes(g.committed(Self.key, digest: Self.digest, origin: .local, nowMs: 10))
        #expect(written[addresses[18]] != nil && (4...5).contains(written.count), "\(written.keys)")
        let forwarded = Self.pushes(g.committed(try! Key("/app/f"), digest: Self.digest, origin: .pushed(by: addresses[18]), nowMs: 20))
        #expect(Self.isForward(forwarded, sender: addresses[18], random: 4, next: addresses[19]))
        // The successor's push failed: it is passed over until it answers.
        for (peer, keys) in written where peer != addresses[18] {
            _ = g.pushAnswered(by: peer, keys.map { (key: $0, digest: Self.digest, held: true) }, nowMs: 30)
        }
        _ = g.pushFailed(to: addresses[18], nowMs: 30)
        let afterFailure = Self.pushes(g.committed(try! Key("/app/g"), digest: Self.digest, origin: .local, nowMs: 40))
        #expect(afterFailure[addresses[18]] == nil && afterFailure[addresses[19]] != nil, "\(afterFailure.keys)")
        // Off: the random pushes alone.
        var plain = node { $0.forwardsAlongRing = false }
        #expect(Self.pushes(plain.committed(Self.key, digest: Self.digest, origin: .local, nowMs: 10)).count == 4)
    }

    /// A forward: `random` peers and the next on the ring (`next`, n1 by default), which may be
    /// among the random ones; never the sender.
    static func isForward(_ pushes: [PeerAddress: [Key]], sender: PeerAddress, random: Int, next: PeerAddress = address(1)) -> Bool {
        pushes[sender] == nil && pushes[next] != nil && (random...random + 1).contains(pushes.count)
    }

    /// Announcements go to the next two peers after this node on the ring of names, passing over
    /// the sender that holds the records and peers that are failing, and wrapping at the end. So
    /// every node has two predecessors that tell it: a node every push missed is missed by the
    /// announcements only if both of those were missed too (Docs/architecture.md §Simulation).
    @Test func announcementsGoToTheNextPeersOnTheRing() {
        let everyone = (1...9).map { (name: "n\($0)", address: Self.address($0)) }
        func node(_ i: Int, _ configure: (inout GossipConfig) -> Void = { _ in }) -> GossipInstance {
            var config = GossipConfig()
            configure(&config)
            var g = GossipInstance(config: config, expectsPeers: true, seed: UInt64(i), name: "n\(i)")
            _ = g.setPeers(members: everyone.filter { $0.name != "n\(i)" }, statics: [], nowMs: 0)
            for a in Self.sessions(g.start(nowMs: 0)) { _ = g.sessionEnded(with: a, SessionOutcome(completed: true, equalAtEnd: true), nowMs: 0) }
            return g
        }
        func announced(_ g: inout GossipInstance, after origin: CommitOrigin, at t: UInt64) -> [PeerAddress] {
            _ = g.committed(try! Key("/app/k\(t)"), digest: Self.digest, origin: origin, nowMs: t)
            return Self.announcements(g.tick(nowMs: t + g.config.announceDelayMs))
        }
        // Not forwarded under direct mail, so the sender holds the record and is passed over.
        var n5 = node(5)
        #expect(announced(&n5, after: .pushed(by: Self.address(9)), at: 10) == [Self.address(6), Self.address(7)])
        #expect(announced(&n5, after: .pushed(by: Self.address(6)), at: 200) == [Self.address(7), Self.address(8)])
        var n8 = node(8)
        #expect(announced(&n8, after: .pushed(by: Self.address(1)), at: 10) == [Self.address(9), Self.address(2)], "wraps")
        // A peer whose push failed is passed over until it answers again.
        _ = n5.pushFailed(to: Self.address(6), nowMs: 300)
        #expect(announced(&n5, after: .pushed(by: Self.address(9)), at: 400) == [Self.address(7), Self.address(8)])
        // Every node is told by exactly two others when all of them announce (each pulled a
        // record, from a peer none of them knows: records pulled are announced too).
        var told: [PeerAddress: Int] = [:]
        for i in 1...9 {
            var g = node(i)
            for a in announced(&g, after: .pulled(from: Self.address(99)), at: 10) { told[a, default: 0] += 1 }
        }
        #expect(told == Dictionary(uniqueKeysWithValues: (1...9).map { (Self.address($0), 2) }))
        // A node without a name (none in the agent or the simulator) has no place on the ring and
        // picks at random.
        var nameless = GossipInstance(expectsPeers: true, seed: 1)
        _ = nameless.setPeers(members: everyone, statics: [], nowMs: 0)
        _ = nameless.start(nowMs: 0)
        #expect(announced(&nameless, after: .pushed(by: Self.address(9)), at: 10).count == 2)
    }

    /// An announcement passes over the peers known to hold every record it is for: the sender,
    /// and those this node pushed them to (the next on the ring among them), so it reaches two
    /// nodes the pushes did not.
    @Test func announcementsPassOverPeersThatHoldTheRecords() {
        let addresses = (0 ..< 100).map { PeerAddress(host: "10.0.0.\($0)", port: 7947) }
        let table = PeerTable(members: addresses.map { ($0.host, $0) }, statics: [])
        var g = GossipInstance(expectsPeers: true, seed: 9)
        _ = g.setPeers(table, ownAddress: addresses[17], nowMs: 0)
        for a in Self.sessions(g.start(nowMs: 0)) { _ = g.sessionEnded(with: a, SessionOutcome(completed: true, equalAtEnd: true), nowMs: 0) }
        let pushed = Set(Self.pushes(g.committed(Self.key, digest: Self.digest, origin: .pushed(by: addresses[30]), nowMs: 10)).keys)
        #expect(pushed.contains(addresses[18]))
        let expected = table.ring.drop { $0 != addresses[18] }.filter { !pushed.contains($0) && $0 != addresses[30] }.prefix(2)
        #expect(Self.announcements(g.tick(nowMs: 10 + g.config.announceDelayMs)) == Array(expected))
    }

    /// Static peers that Serf does not list have no name every node agrees on: they are not on the
    /// ring, and a node whose peers are all such picks at random. A static peer Serf lists sits on
    /// the ring by its Serf name.
    @Test func staticPeersSerfDoesNotListAreOffTheRing() {
        let a = Self.address(1), b = Self.address(2)
        let mixed = PeerTable(members: [("zeta", a)], statics: [a, b])
        #expect(mixed.ring == [a] && mixed.ringNames == ["zeta"] && mixed.statics == [a, b])
        var targets = Set<PeerAddress>()
        for seed in 1...8 as ClosedRange<UInt64> {
            var g = GossipInstance(expectsPeers: true, seed: seed, name: "web1")
            _ = g.setPeers(members: [], statics: (1...10).map(Self.address), nowMs: 0)
            _ = g.committed(Self.key, digest: Self.digest, origin: .pulled(from: Self.address(99)), nowMs: 10)
            let announced = Self.announcements(g.tick(nowMs: 10 + g.config.announceDelayMs))
            #expect(announced.count == 2)
            targets.formUnion(announced)
        }
        #expect(targets.count > 4, "random, not the two lowest addresses every time: \(targets)")
    }

    /// A walk along the ring stops after 64 entries (a partition, a rack down: a long run of
    /// failing peers) and picks the rest at random.
    @Test func aWalkPastALongRunOfFailingPeersEndsInRandomPicks() {
        let addresses = (0 ..< 200).map { PeerAddress(host: "10.0.\($0 / 100).\($0 % 100 + 100)", port: 7947) }
        let table = PeerTable(members: addresses.map { ($0.host, $0) }, statics: [])
        var g = GossipInstance(expectsPeers: true, seed: 4)
        _ = g.setPeers(table, ownAddress: table.ring[0], nowMs: 0)
        for a in Self.sessions(g.start(nowMs: 0)) { _ = g.sessionEnded(with: a, SessionOutcome(completed: true, equalAtEnd: true), nowMs: 0) }
        let down = Set(table.ring[1...100])
        for a in down {
            _ = g.reconcile(with: a, reason: "test")
            _ = g.sessionEnded(with: a, .failed("down"), nowMs: 1)
        }
        _ = g.committed(Self.key, digest: Self.digest, origin: .pulled(from: table.ring[150]), nowMs: 10)
        let announced = Self.announcements(g.tick(nowMs: 10 + g.config.announceDelayMs))
        #expect(announced.count == 2 && announced.allSatisfy { !down.contains($0) && $0 != table.ring[0] && $0 != table.ring[150] }, "\(announced)")
        #expect(announced != [table.ring[101], table.ring[102]], "a walk of 100 entries would have found these")
    }

    @Test func theRingOrdersByNameThenAddress() {
        let a = PeerAddress(host: "10.0.0.9", port: 1), b = PeerAddress(host: "10.0.0.1", port: 1), c = PeerAddress(host: "10.0.0.5", port: 1)
        let table = PeerTable(members: [("beta", a), ("alpha", b), ("beta", c)], statics: [])
        #expect(table.ring == [b, c, a])
        #expect(table.ringIndex(after: "alpha", address: b) == 1)
        #expect(table.ringIndex(after: "beta", address: c) == 2)
        #expect(table.ringIndex(after: "beta", address: a) == 0, "wraps past the end")
        #expect(table.ringIndex(after: "aaa", address: nil) == 0 && table.ringIndex(after: "gamma", address: nil) == 0)
        #expect(table.ringIndex(after: "beta", address: nil) == 1, "an address unknown: the first of that name")
    }
}
