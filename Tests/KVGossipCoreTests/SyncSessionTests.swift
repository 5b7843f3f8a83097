import Testing
@testable import KVGossipCore
import KVGossipTestSupport

@Suite struct SyncSessionTests {
    func node() -> MemoryNode { MemoryNode(root: Fixture.cluster) }

    func fill(_ nodes: [MemoryNode], count: Int, prefix: String = "/k") throws {
        for i in 0..<count {
            let r = Fixture.record("\(prefix)/\(i)", "v\(i)", by: Fixture.root, at: Fixture.now - 100_000)
            for n in nodes { try n.apply(r) }
        }
    }

    @Test func equalTreesCostOneExchangeOfHashes() throws {
        let a = node(), b = node()
        try fill([a, b], count: 500)
        let run = try SessionRun.run(a, b)
        #expect(run.initiatorReport.alreadyEqual)
        #expect(run.roundTrips == 2)  // open ↔ opened, done ↔ done
        #expect(run.messages == 4)
        #expect(run.bytes < 200)
        #expect(run.initiatorReport.equalAtEnd && run.responderReport.equalAtEnd)
    }

    @Test(arguments: [0, 1, 16, 17, 300, 2000])
    func randomDifferencesConvergeBothWays(n: Int) throws {
        let a = node(), b = node()
        try fill([a, b], count: n)
        var rng = SeededRandom(seed: UInt64(n) + 7)
        // Keys only A has, only B has, and keys both changed differently (newer wins).
        for i in 0..<5 { try a.apply(Fixture.record("/onlyA/\(i)", "a", by: Fixture.root)) }
        for i in 0..<5 { try b.apply(Fixture.record("/onlyB/\(i)", "b", by: Fixture.root)) }
        for _ in 0..<min(n, 10) {
            let i = Int.random(in: 0..<n, using: &rng)
            try a.apply(Fixture.record("/k/\(i)", "newer-on-A", by: Fixture.root, at: Fixture.now - 10))
            try b.apply(Fixture.record("/k/\(i)", "older-on-B", by: Fixture.root, at: Fixture.now - 20))
        }
        try b.apply(Fixture.record("/deleted", by: Fixture.root, kind: .tombstone))
        let run = try SessionRun.run(a, b)
        #expect(try a.treeHash() == b.treeHash())
        #expect(a.value("/onlyB/3") == "b" && b.value("/onlyA/4") == "a")
        #expect(a.records.count == b.records.count)
        for (id, r) in a.records where r.value == Array("newer-on-A".utf8) { #expect(b.records[id]?.value == r.value) }
        #expect(a.records[SummaryEntries.keyHash(try Key("/deleted"))]?.kind == .tombstone)
        #expect(run.initiatorReport.refusedByPeer.isEmpty)
        // A second session finds nothing to do.
        #expect(try SessionRun.run(b, a).initiatorReport.alreadyEqual)
    }

    @Test func roundTripsAndBytesGrowWithDifferencesNotTreeSize() throws {
        var figures: [(Int, Int, Int)] = []
        for n in [1_000, 20_000] {
            let a = node(), b = node()
            try fill([a, b], count: n)
            for i in 0..<10 { try a.apply(Fixture.record("/k/\(i * 97)", "changed", by: Fixture.root, at: Fixture.now - 5)) }
            let run = try SessionRun.run(a, b)
            #expect(try a.treeHash() == b.treeHash())
            #expect(run.initiatorReport.recordDifferences == 10)
            figures.append((n, run.bytes, run.roundTrips))
        }
        // 20× the tree costs at most one more level of the walk, not 20× the bytes.
        #expect(figures[1].1 < figures[0].1 * 2)
        #expect(figures[1].2 <= figures[0].2 + 2)
        #expect(figures[1].1 < 64 * 1024)
    }

    @Test func differingKeysArePendingFetchDuringTheExchangeOnly() throws {
        let a = node(), b = node()
        try fill([a, b], count: 100)
        try b.apply(Fixture.record("/k/5", "newer", by: Fixture.root, at: Fixture.now - 1))
        _ = try SessionRun.run(a, b)
        let id = SummaryEntries.keyHash(try Key("/k/5"))
        #expect(a.everPendingFetch == [id])
        #expect(a.pendingFetch.isEmpty)
        #expect(a.value("/k/5") == "newer")
    }

    @Test func emptyHostReceivesEverythingInBoundedBatches() throws {
        let a = node(), b = node()
        try fill([b], count: 3000)
        var limits = SyncLimits()
        limits.batchRecords = 100
        limits.queriesPerRequest = 5  // a level of the walk then spans several requests
        let run = try SessionRun.run(a, b, limits: limits)
        #expect(a.records.count == 3000)
        #expect(try a.treeHash() == b.treeHash())
        #expect(run.responderReport.recordsSent == 3000)
    }

    @Test func aRefusedRecordDoesNotStopTheSession() throws {
        let a = node(), b = node()
        // A holds a record nobody authorized (e.g. from a buggy or hostile peer) plus good ones.
        try a.storeUnchecked(Fixture.record("/forged", "x", by: Fixture.mallory))
        for i in 0..<50 { try a.apply(Fixture.record("/good/\(i)", "g", by: Fixture.root)) }
        let run = try SessionRun.run(a, b)
        #expect(run.initiatorReport.refusedByPeer[.noAuthority] == 1)
        #expect(b.records.count == 50)
        #expect(b.value("/forged") == nil)
    }

    /// A record pushed to a node that already holds it is answered `duplicate` from its digest,
    /// without the checks: shown with a record that would fail them, stored unchecked.
    @Test func aPushedRecordAlreadyHeldIsADuplicateWithoutItsChecks() throws {
        let b = node()
        let forged = Fixture.record("/forged", "x", by: Fixture.mallory)
        try b.storeUnchecked(forged)
        func push(_ records: [Record]) throws -> [PushResult.Code] {
            var responder = SyncResponder(state: b, peer: "a")
            #expect(try responder.receive(.open(.push, .zero)).isEmpty)
            guard case .results(let results) = try responder.receive(.records(records)).first else { return [] }
            return results.map(\.code)
        }
        let other = Fixture.record("/forged/2", "x", by: Fixture.mallory)
        let good = Fixture.record("/good", "g", by: Fixture.root)
        #expect(try push([forged, other, good]) == [.duplicate, .refused, .accepted], "held, checked and refused, checked and taken")
        #expect(b.value("/good") != nil && b.value("/forged/2") == nil)
        // Pulled records are checked even when held.
        var report = SyncReport(), streak = 0
        let pulled = try SyncSession.apply([forged], arrival: .pulled, state: b, peer: "a", limits: .default, report: &report, streak: &streak)
        #expect(pulled.map(\.code) == [.refused])
    }

    /// Whether a record goes on to other peers depends on how it came: what the initiator sends
    /// in a full session reached the responder alone, unlike a push (GossipInstance decides).
    @Test func recordsArriveAsPushedHandedOverOrPulled() throws {
        let a = node(), b = node()
        try fill([a], count: 3, prefix: "/a")
        try fill([b], count: 3, prefix: "/b")
        let run = try SessionRun.run(a, b)
        #expect(run.initiatorReport.equalAtEnd)
        #expect(b.arrivals["/a/0"] == .handedOver && b.arrivals.count == 3, "\(b.arrivals)")
        #expect(a.arrivals["/b/0"] == .pulled && a.arrivals.count == 3, "\(a.arrivals)")
        let c = node()
        var responder = SyncResponder(state: c, peer: "a")
        _ = try responder.receive(.open(.push, .zero))
        _ = try responder.receive(.records([Fixture.record("/p", "x", by: Fixture.root)]))
        #expect(c.arrivals == ["/p": .pushed])
    }

    @Test func revocationsAreReconciledAndCascade() throws {
        let a = node(), b = node(), c = node()
        let g = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**"])
        let r = Fixture.record("/app/x", "by alice", by: Fixture.alice, pool: [g])
        try b.apply(r)
        try c.apply(r)
        let revocation = Revocation(cluster: Fixture.cluster, grantID: g.id, revokedAt: Fixture.now, signer: Fixture.root)
        try a.apply(revocation)
        // B initiates towards A: A refuses B's record (revoked) and B learns the revocation.
        _ = try SessionRun.run(b, a)
        #expect(b.isRevoked(g.id))
        #expect(b.value("/app/x") == nil)
        #expect(a.value("/app/x") == nil)
        #expect(try a.treeHash() == b.treeHash())
        // C learns it through anti-entropy alone, as the responder.
        _ = try SessionRun.run(a, c)
        #expect(c.isRevoked(g.id) && c.value("/app/x") == nil)
    }

    /// A unsets the key whose record the revoked grant signed, and does not fall back to the root's
    /// earlier value in its history; D never got alice's record and still holds the root's value as
    /// current, which is valid, so reconciliation brings it back to A (Docs/contract.md §Revocation).
    @Test func anEarlierValueHeldElsewhereComesBackAfterAnUnset() throws {
        let a = node(), d = node()
        let g = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**"])
        let earlier = Fixture.record("/app/x", "by root", by: Fixture.root, at: Fixture.now - 1000)
        try a.apply(earlier)
        try d.apply(earlier)
        try a.apply(Fixture.record("/app/x", "by alice", by: Fixture.alice, pool: [g]))
        try a.apply(Revocation(cluster: Fixture.cluster, grantID: g.id, revokedAt: Fixture.now, signer: Fixture.root))
        #expect(a.value("/app/x") == nil, "unset, with no fallback to the earlier value A holds in history")
        _ = try SessionRun.run(a, d)
        #expect(d.isRevoked(g.id))
        #expect(a.value("/app/x") == "by root" && d.value("/app/x") == "by root")
        #expect(try a.treeHash() == d.treeHash())
    }

    @Test func refusalOfARevokedRecordCarriesTheRevocation() throws {
        let g = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**"])
        let a = node()
        try a.apply(Revocation(cluster: Fixture.cluster, grantID: g.id, revokedAt: Fixture.now, signer: Fixture.root))
        let result = try a.apply(Fixture.record("/app/x", "v", by: Fixture.alice, pool: [g]))
        #expect(result.code == .refused && result.reason == .revoked)
        #expect(result.revocations.map(\.grantID) == [g.id])
        // The wire keeps them.
        let back = try SyncMessageCodec.decode(SyncMessageCodec.encode(.results([result])))
        #expect(back == .results([result]))
    }

    @Test func outOfOrderMessagesAreProtocolErrors() throws {
        let a = node()
        var responder = SyncResponder(state: a, peer: "B")
        #expect(throws: SyncProtocolError.self) { try responder.receive(.viewRequest([])) }
        var initiator = SyncInitiator(state: a, peer: "B")
        _ = try initiator.start()
        #expect(throws: SyncProtocolError.self) { try initiator.receive(.views([])) }
        // A push answers its records and ends; nothing more is accepted.
        var push = SyncResponder(state: a, peer: "B")
        #expect(try push.receive(.open(.push, .zero)).isEmpty)
        _ = try push.receive(.records([]))
        #expect(push.isFinished)
        #expect(throws: SyncProtocolError.self) { try push.receive(.records([])) }
    }

    /// What one message may ask of a responder is bounded: queries per request, entries only for
    /// small subtrees, pull sizes, revocations per batch, refusals in a row.
    @Test func aPeerCanAskOnlySoMuchPerMessage() throws {
        let b = node()
        try fill([b], count: 2000)
        func opened() throws -> SyncResponder {
            var r = SyncResponder(state: b, peer: "M")
            _ = try r.receive(.open(.full, .zero))
            return r
        }
        let limits = SyncLimits.default
        var r1 = try opened()
        let many = (0..<(limits.queriesPerRequest + 1)).map { _ in ViewQuery(space: .records, prefix: .root, entries: false) }
        #expect(throws: SyncProtocolError.self) { try r1.receive(.viewRequest(many)) }
        // The 4,096-query attack: entries of the whole tree, over and over.
        var r2 = try opened()
        #expect(throws: SyncProtocolError.self) { try r2.receive(.viewRequest([ViewQuery(space: .records, prefix: .root, entries: true)])) }
        // Entries of a small subtree are fine.
        var r3 = try opened()
        let deep = NibblePath(nibbles: [1, 2, 3])!
        #expect(try b.entryCount(.records, under: deep) <= limits.maxEntriesView)
        #expect(try !r3.receive(.viewRequest([ViewQuery(space: .records, prefix: deep, entries: true)])).isEmpty)
        var r4 = try opened()
        #expect(throws: SyncProtocolError.self) { try r4.receive(.pull(records: Array(repeating: .zero, count: limits.pullChunk + 1), revocations: [])) }
        var r5 = try opened()
        let junk = (0..<(limits.maxRefusalStreak + 1)).map { Fixture.record("/j/\($0)", "x", by: Fixture.mallory) }
        #expect(throws: SyncProtocolError.self) {
            for batch in SyncLimits.chunks(junk, of: 10) { _ = try r5.receive(.records(batch)) }
        }
    }

    /// More differences than one pull holds are pulled in chunks, each answered in batches.
    @Test func manyDifferencesArePulledInChunks() throws {
        let a = node(), b = node()
        try fill([b], count: 1200)
        var limits = SyncLimits()
        limits.pullChunk = 500
        limits.batchRecords = 64
        let run = try SessionRun.run(a, b, limits: limits)
        #expect(a.records.count == 1200)
        #expect(try a.treeHash() == b.treeHash())
        #expect(run.initiatorReport.equalAtEnd && run.initiatorReport.completedReconciliation)
        #expect(run.responderReport.equalAtEnd)
    }

    @Test func codecRoundTripsAndRefusesGarbage() throws {
        let g = Fixture.grant(Fixture.root, to: Fixture.alice, ["/a/**"])
        let entry = MerkleEntry(id: Hash256.of([1]), digest: Hash256.of([2]))
        let messages: [SyncMessage] = [
            .open(.full, Hash256.of([3])),
            .open(.push, Hash256.of([6])),
            .opened(Hash256.of([7])),
            .announce(Hash256.of([8])),
            .viewRequest([ViewQuery(space: .records, prefix: NibblePath(nibbles: [1, 2, 3])!, entries: true)]),
            .views([
                ViewAnswer(query: ViewQuery(space: .revocations, prefix: .root, entries: false), view: .internal(Array(repeating: .zero, count: 16))),
                ViewAnswer(query: ViewQuery(space: .records, prefix: .root, entries: false), view: .leaf([entry])),
                ViewAnswer(query: ViewQuery(space: .records, prefix: .root.child(3), entries: false), view: .empty),
            ]),
            .records([Fixture.record("/a/b", "v", by: Fixture.alice, pool: [g])]),
            .pulled([Fixture.record("/a/c", "w", by: Fixture.root)], last: true),
            .revocations([Revocation(cluster: Fixture.cluster, grant: g, revokedAt: 1, signer: Fixture.root)]),
            .pull(records: [Hash256.of([4])], revocations: [g.id]),
            .results([PushResult(code: .refused, reason: .expired, detail: "old")]),
            .done(Hash256.of([5])),
            .failure("bye"),
        ]
        for m in messages { #expect(try SyncMessageCodec.decode(SyncMessageCodec.encode(m)) == m) }
        var rng = SeededRandom(seed: 99)
        for _ in 0..<3000 {
            var bytes = SyncMessageCodec.encode(messages.randomElement(using: &rng)!)
            if Bool.random(using: &rng) {
                bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &rng)))
            } else {
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
            }
            _ = try? SyncMessageCodec.decode(bytes)
        }
        #expect(throws: Refusal.self) { try SyncMessageCodec.decode([0x7f]) }
        #expect(throws: Refusal.self) { try SyncMessageCodec.decode([3, 0xff, 0xff, 0xff, 0xff]) }
    }

    /// A message is decoded only within what a session may take: one over a count bound is refused
    /// before its items are decoded, and one at the bound is decoded whole.
    @Test func messagesOverASessionsCountsAreRefusedAsTheyAreDecoded() throws {
        var session = SyncLimits()
        session.batchRecords = 2
        session.batchRevocations = 2
        session.queriesPerRequest = 2
        session.maxEntriesView = 2
        session.pullChunk = 2
        let g = Fixture.grant(Fixture.root, to: Fixture.alice, ["/a/**"])
        let record = Fixture.record("/a/c", "w", by: Fixture.root)
        let revocation = Revocation(cluster: Fixture.cluster, grant: g, revokedAt: 1, signer: Fixture.root)
        let query = ViewQuery(space: .records, prefix: .root, entries: false)
        let entry = MerkleEntry(id: Hash256.of([1]), digest: Hash256.of([2]))
        let ids = [Hash256.of([4]), Hash256.of([5])]
        let atTheBound: [SyncMessage] = [
            .records([record, record]), .pulled([record, record], last: false), .revocations([revocation, revocation]),
            .viewRequest([query, query]), .views([ViewAnswer(query: query, view: .leaf([entry, entry])), ViewAnswer(query: query, view: .empty)]),
            .pull(records: ids, revocations: ids), .results([PushResult(code: .accepted), PushResult(code: .duplicate)]),
        ]
        let overIt: [SyncMessage] = [
            .records([record, record, record]), .pulled([record, record, record], last: true),
            .revocations([revocation, revocation, revocation]), .viewRequest([query, query, query]),
            .views([ViewAnswer(query: query, view: .empty), ViewAnswer(query: query, view: .empty), ViewAnswer(query: query, view: .empty)]),
            .views([ViewAnswer(query: query, view: .leaf([entry, entry, entry]))]),
            .pull(records: ids + ids, revocations: []), .pull(records: [], revocations: ids + ids),
            .results([PushResult(code: .accepted), PushResult(code: .accepted), PushResult(code: .duplicate)]),
        ]
        for m in atTheBound { #expect(try SyncMessageCodec.decode(SyncMessageCodec.encode(m), session: session) == m) }
        for m in overIt {
            #expect(throws: Refusal.self, "\(m.kindName) decoded") { try SyncMessageCodec.decode(SyncMessageCodec.encode(m), session: session) }
            #expect(try SyncMessageCodec.decode(SyncMessageCodec.encode(m)) == m, "under the default limits")
        }
        // A result carries the revocations of one chain's grants at most.
        var objects = Limits.default
        objects.maxChainLength = 2
        func refusal(_ n: Int) -> SyncMessage {
            .results([PushResult(code: .refused, reason: .revoked, detail: "", revocations: Array(repeating: revocation, count: n))])
        }
        #expect(try SyncMessageCodec.decode(SyncMessageCodec.encode(refusal(2)), limits: objects) == refusal(2))
        #expect(throws: Refusal.self) { try SyncMessageCodec.decode(SyncMessageCodec.encode(refusal(3)), limits: objects) }
    }

    /// Records are read a batch at a time, and only as many as the batch holds: a pull of one
    /// large record's position 4,096 times over loads that record once and sends it once, and a
    /// pull of many large records loads each only for the batch that carries it.
    @Test func pulledRecordsAreReadOnlyAsTheBatchHoldsThem() throws {
        let b = node()
        var limits = SyncLimits()
        limits.batchBytes = 10_000
        let big = (0..<20).map { Fixture.record("/big/\($0)", String(repeating: "x", count: 3_000), by: Fixture.root, at: Fixture.now - 100_000) }
        for r in big { try b.apply(r) }
        let ids = big.map { SummaryEntries.keyHash($0.key) }

        var repeated = SyncResponder(state: b, peer: "M", limits: limits)
        _ = try repeated.receive(.open(.full, .zero))
        let answer = try repeated.receive(.pull(records: Array(repeating: ids[0], count: limits.pullChunk), revocations: []))
        #expect(answer == [.pulled([big[0]], last: true)])
        #expect(b.recordsLoaded == 1)

        var many = SyncResponder(state: b, peer: "M", limits: limits)
        _ = try many.receive(.open(.full, .zero))
        let first = try many.receive(.pull(records: ids, revocations: []))
        // Three records of about 3 KB fit 10,000 bytes; the window holds two batches.
        let sent = first.flatMap { message -> [Record] in if case .pulled(let records, _) = message { records } else { [] } }
        #expect(sent == Array(big[0..<6]))
        #expect(b.recordsLoaded == 1 + 6, "records loaded beyond the batches sent")
    }

    /// An initiator sends its records at the differing positions a batch at a time, reading each
    /// batch only when it is sent: a peer whose tree is empty does not make it read its whole store.
    @Test func anInitiatorReadsItsRecordsOnlyAsItSendsThem() throws {
        let a = node(), b = node()
        try fill([a], count: 600)
        var limits = SyncLimits()
        limits.batchRecords = 100
        var initiator = SyncInitiator(state: a, peer: "B", limits: limits)
        var responder = SyncResponder(state: b, peer: "A", limits: limits)
        var toResponder = try initiator.start()
        var sentBatches = 0
        while !initiator.isFinished {
            var toInitiator: [SyncMessage] = []
            for m in toResponder {
                if case .records = m {
                    sentBatches += 1
                    #expect(a.recordsLoaded <= sentBatches * limits.batchRecords, "read ahead of what was sent")
                }
                toInitiator += try responder.receive(m)
            }
            toResponder = []
            for m in toInitiator { toResponder += try initiator.receive(m) }
        }
        #expect(sentBatches == 6)
        #expect(try a.treeHash() == b.treeHash())
    }

    /// Records an initiator pulled and accepted during the session are the peer's own: they are
    /// not sent back when the initiator reaches their positions among its own.
    @Test func anInitiatorDoesNotSendBackWhatItJustPulled() throws {
        let a = node(), b = node()
        try fill([a], count: 300, prefix: "/a")
        try fill([b], count: 300, prefix: "/b")
        var limits = SyncLimits()
        limits.batchRecords = 20
        let run = try SessionRun.run(a, b, limits: limits)
        #expect(run.initiatorReport.recordsSent == 300, "records sent back to the peer that had them")
        #expect(run.initiatorReport.recordsReceived == 300)
        #expect(try a.treeHash() == b.treeHash())
    }

    /// What a link counts for a message it holds grows with the objects it decoded to, not only its
    /// frame: a record's pool grants and their patterns count, and so do a revocation's grants.
    @Test func aMessagesHeldSizeCountsItsObjects() throws {
        let g = Fixture.grant(Fixture.root, to: Fixture.alice, ["/a/**", "/b/**", "/c/**"])
        let bare = Fixture.record("/a/c", "w", by: Fixture.root)
        let pooled = Fixture.record("/a/b", "v", by: Fixture.alice, pool: [g, g])
        let one = SyncMessage.records([bare])
        #expect(one.heldSize(frameBytes: 100) == 200 + 2 * SyncMessage.perObject)
        // Each pooled record: itself, two grants, three patterns each.
        #expect(SyncMessage.records([pooled, pooled]).heldSize(frameBytes: 0) == (1 + 2 * 9) * SyncMessage.perObject)
        let revocation = Revocation(cluster: Fixture.cluster, grant: g, revokedAt: 1, signer: Fixture.root)
        #expect(SyncMessage.revocations([revocation]).heldSize(frameBytes: 0) == (1 + 1 + 4) * SyncMessage.perObject)
        #expect(SyncMessage.results([PushResult(code: .refused, reason: .revoked, detail: "", revocations: [revocation])]).heldSize(frameBytes: 0)
            == (1 + 1 + 1 + 4) * SyncMessage.perObject)
        #expect(SyncMessage.pull(records: [.zero, .zero], revocations: [.zero]).heldSize(frameBytes: 0) == 4 * SyncMessage.perObject)
    }

    /// Caught by the sync and tree-hash fuzz targets: long texts were cut inside a code point, which
    /// reached the peer as U+FFFD (failure and result texts) or as a name it refuses (announcements).
    @Test func longTextsAreCutBetweenCodePoints() throws {
        let text = String(repeating: "a", count: 999) + "é"  // 2 bytes: the 1000-byte cut falls inside
        #expect(try SyncMessageCodec.decode(SyncMessageCodec.encode(.failure(text))) == .failure(String(text.dropLast())))
        let name = String(repeating: "n", count: 127) + "€"  // 3 bytes across the 128-byte limit
        let announcement = TreeHashAnnouncement(cluster: Fixture.cluster, treeHash: .zero, syncPort: 7947, nodeName: name)
        #expect(try TreeHashAnnouncement(decoding: announcement.encoded).nodeName == String(name.dropLast()))
    }
}
