import Foundation
import KVGossipCore
import Synchronization
import Testing
@testable import KVGossipStore

/// A store in its own temporary directory, removed when the test ends.
final class TempStore {
    let directory: String
    var store: Store

    init(clockMs: UInt64 = StoreFixture.now, history: HistoryBounds = .default) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-store-\(UUID().uuidString)").path
        store = try Store(directory: directory, root: StoreFixture.root.publicKey, history: history, clock: { clockMs })
    }

    func reopen(history: HistoryBounds? = nil) throws {
        store = try Store(directory: directory, root: StoreFixture.root.publicKey, history: history ?? store.historyBounds, clock: { StoreFixture.now })
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }
}

enum StoreFixture {
    static func key(_ n: UInt8) -> SigningKey { SigningKey(seed: [UInt8](repeating: n, count: 32))! }
    static let root = key(1)
    static let alice = key(2)
    static let bob = key(3)
    static let now: UInt64 = 1_795_737_600_000

    static func grant(_ issuer: SigningKey, to issuee: SigningKey, _ patterns: [String], delegate: Bool = false, nonce: UInt8 = 0) -> Grant {
        try! Grant(
            cluster: root.publicKey, issuer: issuer, issuee: issuee.publicKey, patterns: patterns.map { try! Pattern($0) },
            mayDelegate: delegate, notBefore: now - 60_000, expires: nil, nonce: [UInt8](repeating: nonce, count: 16))
    }

    static func record(_ key: String, _ value: String?, by signer: SigningKey = root, pool: [Grant] = [], at ms: UInt64 = now, counter: UInt16 = 0) -> Record {
        Record(
            cluster: root.publicKey, key: try! Key(key), kind: value == nil ? .tombstone : .value, value: Array((value ?? "").utf8),
            timestamp: HLC(physicalMs: ms, counter: counter), signer: signer, pool: pool)
    }
}

@Suite struct StoreTests {
    /// The writer syncs the WAL at every commit (GRDB's WAL set-up would leave it at NORMAL), also
    /// after a reopen.
    @Test func everyCommitIsSynced() throws {
        let t = try TempStore()
        #expect(try t.store.synchronousLevel == 2)
        try t.reopen()
        #expect(try t.store.synchronousLevel == 2)
    }

    /// A record from a peer is published as soon as it is committed and synced before `apply`
    /// returns (Docs/architecture.md §Durability); a local write syncs inside its commit.
    @Test func aPeersRecordIsPublishedThenSyncedBeforeApplyReturns() throws {
        let t = try TempStore()
        let syncsSeenByObserver = Mutex<[Int]>([])
        let store = t.store
        let observation = store.observeCommits { _ in syncsSeenByObserver.withLock { $0.append(store.walSync.completed) } }
        defer { observation.cancel() }
        let peer = PeerAddress(host: "10.0.0.2", port: 7947)
        #expect(try t.store.apply(StoreFixture.record("/p/a", "1"), origin: .pushed(by: peer)) == .accepted)
        #expect(syncsSeenByObserver.withLock { $0 } == [0])
        #expect(t.store.walSync.completed == 1)
        // Left at NORMAL for the next peer's commit: nothing to switch for a run of them.
        #expect(try t.store.synchronousLevel == 1)
        #expect(try t.store.apply(StoreFixture.record("/p/b", "2"), origin: .pulled(from: peer)) == .accepted)
        #expect(t.store.walSync.completed == 2)
        // A local write: SQLite syncs inside the commit, no sync after it.
        #expect(try t.store.apply(StoreFixture.record("/p/c", "3")) == .accepted)
        #expect(t.store.walSync.completed == 2)
        #expect(try t.store.synchronousLevel == 2)
        #expect(syncsSeenByObserver.withLock { $0 } == [0, 1, 2])
    }

    /// A sync of the log that fails is final (Docs/architecture.md §Durability): the peer's record
    /// it was for is not acknowledged, and every later commit (a local write, a peer's record, a
    /// grant) and every answer that needs a sync is refused, even once the log is back.
    @Test func aFailedSyncOfTheLogRefusesEveryLaterWrite() throws {
        let t = try TempStore()
        let peer = PeerAddress(host: "10.0.0.2", port: 7947)
        #expect(try t.store.apply(StoreFixture.record("/p/a", "1"), origin: .pushed(by: peer)) == .accepted)
        // SQLite goes on writing the log through its open descriptor; the path a sync opens loops.
        let log = t.store.walSync.path
        try FileManager.default.moveItem(atPath: log, toPath: log + ".aside")
        try FileManager.default.createSymbolicLink(atPath: log, withDestinationPath: log)
        #expect(throws: WALSyncError.self) { try t.store.apply(StoreFixture.record("/p/b", "2"), origin: .pushed(by: peer)) }
        #expect(t.store.syncFailure?.contains("accepts no more writes") == true)
        try FileManager.default.removeItem(atPath: log)
        try FileManager.default.moveItem(atPath: log + ".aside", toPath: log)

        #expect(throws: WALSyncError.self) { try t.store.apply(StoreFixture.record("/p/c", "3")) }
        #expect(throws: WALSyncError.self) { try t.store.apply(StoreFixture.record("/p/d", "4"), origin: .pushed(by: peer)) }
        #expect(throws: WALSyncError.self) { try t.store.addGrants([StoreFixture.grant(StoreFixture.root, to: StoreFixture.alice, ["/p/**"])]) }
        #expect(throws: WALSyncError.self) { try t.store.syncPeerRecords() }
        #expect(try t.store.record(Key("/p/c")) == nil && t.store.grants().isEmpty)
    }

    /// Each write puts the writer at the level it needs before it runs, whatever the last write's
    /// outcome: a peer's commit at NORMAL (synced after its publish), everything else at FULL, so a
    /// local write, a grant or a history bound syncs inside its commit (Docs/architecture.md
    /// §Durability).
    @Test func everyWriteButAPeersCommitRunsAtFull() throws {
        let t = try TempStore()
        struct Refused: Error {}
        #expect(try t.store.commit(.afterPublishing) { db, _ in try db.synchronousLevel() } == 1)
        #expect(try t.store.writing { try $0.synchronousLevel() } == 2)
        #expect(throws: Refused.self) { try t.store.commit(.afterPublishing) { _, _ in throw Refused() } }
        #expect(try t.store.writing { try $0.synchronousLevel() } == 2)
        #expect(throws: Refused.self) { try t.store.commit(.afterPublishing) { _, _ in throw Refused() } }
        #expect(try t.store.commit { db, _ in try db.synchronousLevel() } == 2)
        #expect(try t.store.commit(.afterPublishing) { db, _ in try db.synchronousLevel() } == 1)
        _ = try t.store.addGrants([])
        #expect(try t.store.synchronousLevel == 2)
    }

    @Test func applyCloseReopenKeepsRecordsAndTreeHash() throws {
        let t = try TempStore()
        let before = t.store.treeHash
        for i in 0..<200 {
            #expect(try t.store.apply(StoreFixture.record("/app/k\(i)", "v\(i)")) == .accepted)
        }
        let hash = t.store.treeHash
        #expect(hash != before)
        try t.reopen()
        #expect(t.store.treeHash == hash)
        #expect(try t.store.recordCount == 200)
        #expect(try t.store.record(Key("/app/k7"))?.value == Array("v7".utf8))
    }

    /// `close` closes the writer after every other connection (the pool's readers, the digest
    /// lookup's, the checkpointer's), so SQLite copies the log into the database file and removes
    /// it; later work throws instead of reaching a closed connection.
    @Test func closeLeavesNoLogAndRefusesLaterWork() throws {
        let t = try TempStore()
        for i in 0..<50 { _ = try t.store.apply(StoreFixture.record("/app/k\(i)", "v\(i)")) }
        // Open the other connections, as a running agent has them.
        #expect(try t.store.digestLookup.digests(of: [Key("/app/k1")]).first! != nil)
        #expect(try t.store.record(Key("/app/k2"))?.value == Array("v2".utf8))
        let log = "\(t.directory)/\(Store.fileName)-wal"
        #expect(FileManager.default.fileExists(atPath: log))
        let hash = t.store.treeHash

        try t.store.close()
        #expect(!FileManager.default.fileExists(atPath: log), "another connection outlived the writer")
        try t.store.close()
        #expect(throws: StoreError.self) { try t.store.apply(StoreFixture.record("/app/late", "x")) }
        #expect(throws: StoreError.self) { try t.store.digests(of: [Key("/app/k1")]) }
        #expect(throws: (any Error).self) { try t.store.record(Key("/app/k2")) }

        try t.reopen()
        #expect(t.store.treeHash == hash)
        #expect(try t.store.recordCount == 50)
    }

    @Test func sameSetSameHashWhateverTheOrder() throws {
        let a = try TempStore(), b = try TempStore()
        let records = (0..<300).map { StoreFixture.record("/k/\($0)", "x\($0)") }
        _ = try a.store.apply(records)
        for r in records.reversed() { _ = try b.store.apply(r) }
        #expect(a.store.treeHash == b.store.treeHash)
    }

    @Test func newestWinsAndDuplicatesAreRecognised() throws {
        let t = try TempStore()
        let old = StoreFixture.record("/k", "old", at: StoreFixture.now - 10)
        let new = StoreFixture.record("/k", "new")
        #expect(try t.store.apply(new) == .accepted)
        #expect(try t.store.apply(new) == .duplicate)
        #expect(try t.store.apply(old) == .superseded(current: new.version))
        #expect(try t.store.record(Key("/k"))?.value == Array("new".utf8))
        let tomb = StoreFixture.record("/k", nil)
        #expect(try t.store.apply(tomb) == .accepted)  // same time: tombstone beats value
        #expect(try t.store.record(Key("/k"))?.kind == .tombstone)
    }

    /// What a push's receiver compares first: the current record's digest per key, nil where the
    /// key holds nothing, a newer version's digest once it replaced the old.
    @Test func digestsAreTheCurrentRecordsDigests() throws {
        let t = try TempStore()
        let old = StoreFixture.record("/app/a", "1")
        let new = StoreFixture.record("/app/a", "2", counter: 1)
        let gone = StoreFixture.record("/app/b", nil)
        for r in [old, new, gone] { #expect(try t.store.apply(r) == .accepted) }
        let keys = [new.key, try Key("/app/none"), gone.key]
        #expect(try t.store.digests(of: keys) == [new.digest, nil, gone.digest])
        #expect(try t.store.digests(of: keys) == keys.map { try t.store.record($0)?.digest })
        // The same answers read from the store, as for keys no recent commit named.
        #expect(try t.store.digestLookup.digests(of: keys) == [new.digest, nil, gone.digest])
    }

    /// Keys the last commits named are answered from them (`RecentDigests`), and the answers
    /// follow every later commit: a newer record, a revocation that unsets the key.
    @Test func digestsOfRecentlyCommittedKeysFollowEveryCommit() throws {
        let t = try TempStore()
        let first = StoreFixture.record("/app/a", "1")
        #expect(try t.store.apply(first) == .accepted)
        #expect(t.store.state.withLock { $0.recentDigests.lookup(first.key) } == .some(first.digest))
        #expect(try t.store.digests(of: [first.key]) == [first.digest])
        let second = StoreFixture.record("/app/a", "2", counter: 1)
        #expect(try t.store.apply(second) == .accepted)
        #expect(try t.store.digests(of: [first.key]) == [second.digest])
        // A key no commit named is read.
        #expect(t.store.state.withLock { $0.recentDigests.lookup(try! Key("/app/other")) } == nil)
        #expect(try t.store.digests(of: [Key("/app/other"), first.key]) == [nil, second.digest])
    }

    @Test func refusalsCarryReasonsAndChangeNothing() throws {
        let t = try TempStore()
        let hash = t.store.treeHash
        let noGrant = StoreFixture.record("/app/x", "v", by: StoreFixture.alice)
        let future = StoreFixture.record("/app/y", "v", at: StoreFixture.now + 60_000)
        let outcomes = try t.store.apply([noGrant, future])
        let reasons: [RefusalReason?] = outcomes.map { outcome -> RefusalReason? in
            if case .refused(let r, _) = outcome { return r.reason }
            return nil
        }
        #expect(reasons == [.noAuthority, .clockSkew])
        #expect(t.store.treeHash == hash)
        #expect(try t.store.recordCount == 0)
    }

    /// The last timestamp this node minted survives a restart: an agent started again with its
    /// clock a few seconds behind (stepped back, or a host restored from a snapshot) still dates
    /// its next write after the last one, so the new value wins (Docs/contract.md §Ordering).
    @Test func theLastMintedTimestampSurvivesARestartWithTheClockBehind() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-store-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let key = try Key("/app/k")
        let first = try Store(directory: directory, root: StoreFixture.root.publicKey, clock: { StoreFixture.now })
        let (before, _) = try first.mint(key: key, value: Array("old".utf8), signer: StoreFixture.root, pool: [])
        try first.close()
        let again = try Store(directory: directory, root: StoreFixture.root.publicKey, clock: { StoreFixture.now - 5_000 })
        let (after, outcome) = try again.mint(key: key, value: Array("new".utf8), signer: StoreFixture.root, pool: [])
        #expect(outcome == .accepted)
        #expect(after.timestamp > before.timestamp, "\(after.timestamp.rfc3339) is not after \(before.timestamp.rfc3339)")
        #expect(try again.record(key)?.value == Array("new".utf8))
    }

    /// Two different revocations of one grant (here revoked at different times): every node keeps
    /// the one with the smaller digest, whichever arrived first, so their trees agree
    /// (Docs/contract.md §Revocation).
    @Test func ofTwoRevocationsOfOneGrantEveryNodeKeepsTheSmallerDigest() throws {
        let grant = StoreFixture.grant(StoreFixture.root, to: StoreFixture.alice, ["/app/**"])
        let pair = [1_000, 2_000].map { Revocation(cluster: StoreFixture.root.publicKey, grant: grant, revokedAt: StoreFixture.now - UInt64($0), signer: StoreFixture.root) }
        #expect(pair[0].digest != pair[1].digest)
        let kept = pair.min { $0.digest < $1.digest }!
        let (a, b) = (try TempStore(), try TempStore())
        for r in pair { _ = try a.store.apply(r) }
        for r in pair.reversed() { _ = try b.store.apply(r) }
        #expect(try a.store.revocations().map(\.digest) == [kept.digest])
        #expect(try b.store.revocations().map(\.digest) == [kept.digest])
        #expect(a.store.treeHash == b.store.treeHash)
    }

    /// A record refused for being ahead of this node's clock is not remembered as bad: offered
    /// again once the clock has caught up, it is accepted (Docs/operations.md §Troubleshooting).
    @Test func aRecordRefusedForClockSkewIsAcceptedOnceTheClockCatchesUp() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-store-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let now = Atomic<UInt64>(StoreFixture.now)
        let store = try Store(directory: directory, root: StoreFixture.root.publicKey, clock: { now.load(ordering: .relaxed) })
        let ahead = StoreFixture.record("/app/y", "v", at: StoreFixture.now + 60_000)
        guard case .refused(let refusal, _) = try store.apply(ahead) else {
            Issue.record("a record a minute ahead was not refused")
            return
        }
        #expect(refusal.reason == .clockSkew)
        now.store(StoreFixture.now + 60_000, ordering: .relaxed)
        #expect(try store.apply(ahead) == .accepted)
        #expect(try store.record(Key("/app/y"))?.value == Array("v".utf8))
    }

    /// A batch large enough to be checked on worker threads while it is stored: each outcome is
    /// its own record's, in the batch's order.
    @Test func aLargeBatchKeepsEachOutcomeWithItsRecord() throws {
        let t = try TempStore()
        let records = (0..<300).map { i in
            i % 4 == 1 ? StoreFixture.record("/big/\(i)", "v", by: StoreFixture.alice) : StoreFixture.record("/big/\(i)", "v\(i)")
        }
        let outcomes = try t.store.apply(records)
        #expect(outcomes.map { $0 == .accepted } == records.indices.map { $0 % 4 != 1 })
        #expect(try t.store.recordCount == 225)
        #expect(try t.store.record(Key("/big/298"))?.value == Array("v298".utf8))
    }

    /// Checks begun before the batch's turn (`precheck`, as a link does when pulled records arrive)
    /// are the ones its apply uses, and a revocation committed in between still wins.
    @Test func aPrecheckedBatchIsAppliedWithItsChecksAndRevocationsStillWin() throws {
        let t = try TempStore()
        let grant = StoreFixture.grant(StoreFixture.root, to: StoreFixture.alice, ["/pre/**"])
        let batch = (0..<100).map { StoreFixture.record("/pre/\($0)", "v", by: StoreFixture.alice, pool: [grant]) }
        t.store.precheck(batch)
        #expect(t.store.prechecked.withLock { $0.count } == 1)
        let revocation = Revocation(cluster: StoreFixture.root.publicKey, grantID: grant.id, revokedAt: StoreFixture.now, signer: StoreFixture.root)
        #expect(try t.store.apply(revocation) == .accepted(unset: [], pruned: []))
        let outcomes = try t.store.apply(batch)
        #expect(t.store.prechecked.withLock { $0.isEmpty })
        #expect(t.store.precheckedBatchesTaken == 1)
        #expect(outcomes.allSatisfy { if case .refused(let refusal, _) = $0 { refusal.reason == .revoked } else { false } })
        #expect(try t.store.recordCount == 0)

        let fine = (0..<100).map { StoreFixture.record("/fine/\($0)", "v") }
        t.store.precheck(fine)
        #expect(try t.store.apply(fine).allSatisfy { $0 == .accepted })
        #expect(try t.store.recordCount == 100)
        #expect(t.store.precheckedBatchesTaken == 2)
    }

    /// Checks begun for one copy of a batch do not stand for another copy with the same digests:
    /// a record whose pool grant carries forged signature bytes is judged on its own bytes.
    @Test func aPrecheckStandsOnlyForTheSameBytes() throws {
        let t = try TempStore()
        let grant = StoreFixture.grant(StoreFixture.root, to: StoreFixture.alice, ["/same/**"])
        let genuine = (0..<64).map { StoreFixture.record("/same/\($0)", "v", by: StoreFixture.alice, pool: [grant]) }
        var bytes = genuine[5].encoded
        bytes[bytes.count - 1] ^= 1  // the last byte of the grant's signature
        var copy = genuine
        copy[5] = try Record(decoding: bytes)
        t.store.precheck(genuine)
        let outcomes = try t.store.apply(copy)
        #expect(t.store.precheckedBatchesTaken == 0)
        #expect(outcomes[5] != .accepted)
        #expect(outcomes.enumerated().allSatisfy { $0.offset == 5 || $0.element == .accepted })
    }

    /// A revocation committed after the checks began: a record whose pool holds another chain
    /// is searched again and kept, not refused for the revoked chain the checks had chosen.
    @Test func aRevokedChainIsSearchedAgainNotRefusedOutright() throws {
        let t = try TempStore()
        let first = StoreFixture.grant(StoreFixture.root, to: StoreFixture.alice, ["/two/**"], nonce: 1)
        let second = StoreFixture.grant(StoreFixture.root, to: StoreFixture.alice, ["/two/**"], nonce: 2)
        let batch = (0..<64).map { StoreFixture.record("/two/\($0)", "v", by: StoreFixture.alice, pool: [first, second]) }
        t.store.precheck(batch)
        let chosen = try #require(t.store.prechecked.withLock { $0.first }?.verdict(at: 0).chain?.first)
        let revocation = Revocation(cluster: StoreFixture.root.publicKey, grantID: chosen.id, revokedAt: StoreFixture.now, signer: StoreFixture.root)
        #expect(try t.store.apply(revocation) == .accepted(unset: [], pruned: []))
        #expect(try t.store.apply(batch).allSatisfy { $0 == .accepted })
        #expect(t.store.precheckedBatchesTaken == 1)
    }

    /// Only the same records take prechecked work; checks begun too long ago, or pushed out by
    /// newer ones, are dropped.
    @Test func precheckedWorkIsMatchedBoundedAndAged() throws {
        let clock = Mutex(StoreFixture.now)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-store-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try Store(directory: directory, root: StoreFixture.root.publicKey, clock: { clock.withLock { $0 } })
        let batches = (0..<6).map { b in (0..<64).map { StoreFixture.record("/b\(b)/\($0)", "v") } }
        for batch in batches { store.precheck(batch) }
        #expect(store.prechecked.withLock { $0.count } == Store.precheckedLimit)
        #expect(store.takePrechecked(batches[0]) == nil)  // pushed out by newer batches
        #expect(store.takePrechecked(Array(batches[5].dropLast()) + [StoreFixture.record("/other", "v")]) == nil)
        #expect(store.takePrechecked(batches[5]) != nil)
        clock.withLock { $0 += Store.precheckedMaxAgeMs + 1 }
        #expect(store.takePrechecked(batches[4]) == nil)  // too old: judged by a clock too far back
        #expect(store.prechecked.withLock { $0.isEmpty })
        store.precheck(Array(batches[0].prefix(63)))  // too small to be worth it
        #expect(store.prechecked.withLock { $0.isEmpty })
        // A clock stepped back ages checks too: they were judged by a clock ahead of the apply's.
        store.precheck(batches[3])
        clock.withLock { $0 -= Store.precheckedMaxAgeMs + 1 }
        #expect(store.takePrechecked(batches[3]) == nil)
    }

    @Test func mintOrdersAfterAFutureDatedValue() throws {
        let t = try TempStore()
        let future = StoreFixture.record("/k", "from a fast clock", at: StoreFixture.now + 20_000)
        #expect(try t.store.apply(future) == .accepted)
        let (minted, outcome) = try t.store.mint(key: Key("/k"), value: Array("local".utf8), signer: StoreFixture.root, pool: [])
        #expect(outcome == .accepted)
        #expect(minted.timestamp > future.timestamp)
        let (second, _) = try t.store.mint(key: Key("/other"), value: [], signer: StoreFixture.root, pool: [])
        #expect(second.timestamp > minted.timestamp)  // last-minted is remembered across keys
    }

    /// A forward clock jump, one write, and the clock back: later writes are dated by the clock
    /// (not stuck behind the jump's timestamp), the jump is reported, the key written during the
    /// jump refuses new values with an explanation, and a refused mint moves nothing.
    @Test func aClockJumpDoesNotBlockLaterWrites() throws {
        let now = Mutex(StoreFixture.now)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-store-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try Store(directory: directory, root: StoreFixture.root.publicKey, clock: { now.withLock { $0 } })
        let hour: UInt64 = 3_600_000

        now.withLock { $0 += hour }  // the clock jumps forward
        let (during, duringOutcome) = try store.mint(key: try Key("/jump"), value: Array("during".utf8), signer: StoreFixture.root, pool: [])
        #expect(duringOutcome == .accepted && during.timestamp.physicalMs == StoreFixture.now + hour)
        now.withLock { $0 -= hour }  // and back

        let (after, outcome) = try store.mint(key: try Key("/other"), value: Array("after".utf8), signer: StoreFixture.root, pool: [])
        #expect(outcome == .accepted)
        #expect(after.timestamp.physicalMs == StoreFixture.now, "dated by the clock, not after the jump")
        #expect(store.clockWentBack?.lastMinted == during.timestamp)

        let (_, blocked) = try store.mint(key: try Key("/jump"), value: Array("new".utf8), signer: StoreFixture.root, pool: [])
        guard case .refused(let refusal, _) = blocked else {
            Issue.record("a value dated an hour ahead cannot be superseded now: \(blocked)")
            return
        }
        #expect(refusal.reason == .clockSkew && refusal.detail.contains("ahead of this writer's clock"))
        // The refused mint did not move the last minted timestamp: the next write is dated by the clock.
        now.withLock { $0 += 5 }
        let (next, _) = try store.mint(key: try Key("/other"), value: Array("next".utf8), signer: StoreFixture.root, pool: [])
        #expect(next.timestamp.physicalMs == StoreFixture.now + 5)
        // Once the clock passes the jump, nothing is reported any more.
        now.withLock { $0 = StoreFixture.now + hour + 1 }
        #expect(store.clockWentBack == nil)
    }

    /// A new version of a key is found by the grants its own pool cites, not the old version's:
    /// revoking the grant only the new version cites unsets the key, and revoking the one only the
    /// old version cited leaves it alone.
    @Test func theCascadeFindsAReplacedRecordByItsNewPool() throws {
        let t = try TempStore()
        let old = StoreFixture.grant(StoreFixture.root, to: StoreFixture.alice, ["/app/**"], nonce: 1)
        let new = StoreFixture.grant(StoreFixture.root, to: StoreFixture.alice, ["/app/**"], nonce: 2)
        #expect(try t.store.apply(StoreFixture.record("/app/x", "1", by: StoreFixture.alice, pool: [old])) == .accepted)
        #expect(try t.store.apply(StoreFixture.record("/app/x", "2", by: StoreFixture.alice, pool: [new], counter: 1)) == .accepted)
        let revokeOld = Revocation(cluster: StoreFixture.root.publicKey, grantID: old.id, revokedAt: StoreFixture.now, signer: StoreFixture.root)
        #expect(try t.store.apply(revokeOld) == .accepted(unset: [], pruned: []))
        let revokeNew = Revocation(cluster: StoreFixture.root.publicKey, grantID: new.id, revokedAt: StoreFixture.now, signer: StoreFixture.root)
        #expect(try t.store.apply(revokeNew) == .accepted(unset: [try Key("/app/x")], pruned: []))
        #expect(try t.store.record(Key("/app/x")) == nil)
    }

    @Test func revocationCascadeInTheStore() async throws {
        let t = try TempStore()
        let wide = StoreFixture.grant(StoreFixture.root, to: StoreFixture.alice, ["/app/**"], nonce: 1)
        let narrow = StoreFixture.grant(StoreFixture.root, to: StoreFixture.alice, ["/app/keep"], nonce: 2)
        let keep = StoreFixture.record("/app/keep", "k", by: StoreFixture.alice, pool: [wide, narrow])
        let lose = StoreFixture.record("/app/lose", "l", by: StoreFixture.alice, pool: [wide])
        #expect(try t.store.apply([keep, lose]) == [.accepted, .accepted])
        let changes = t.store.changes()

        let revocation = Revocation(cluster: StoreFixture.root.publicKey, grantID: wide.id, revokedAt: StoreFixture.now, signer: StoreFixture.root)
        #expect(try t.store.apply(revocation) == .accepted(unset: [try Key("/app/lose")], pruned: [try Key("/app/keep")]))
        #expect(try t.store.apply(revocation) == .duplicate)
        #expect(try t.store.record(Key("/app/lose")) == nil)
        #expect(try t.store.record(Key("/app/keep"))?.pool == [narrow])
        #expect(t.store.isRevoked(wide.id))

        var it = changes.makeAsyncIterator()
        var seen: [StoreChange] = []
        for _ in 0..<2 { if let c = await it.next() { seen.append(c) } }
        #expect(seen.contains(.revocation(revocation)))
        #expect(seen.contains(.unset(try Key("/app/lose"), previous: lose.version)))

        // Pushing the lost record again is refused, and the answer carries the revocation.
        guard case .refused(let refusal, let revocations) = try t.store.apply(lose) else {
            Issue.record("revoked record accepted")
            return
        }
        #expect(refusal.reason == .revoked)
        #expect(revocations == [revocation])

        // Revocations survive a restart and still apply.
        let hash = t.store.treeHash
        try t.reopen()
        #expect(t.store.treeHash == hash)
        #expect(t.store.isRevoked(wide.id))
    }

    @Test func sameRecordsAndRevocationsSameHashInAnyOrder() throws {
        let a = try TempStore(), b = try TempStore()
        let g = StoreFixture.grant(StoreFixture.root, to: StoreFixture.alice, ["/**"])
        let r = StoreFixture.record("/x", "v", by: StoreFixture.alice, pool: [g])
        let rev = Revocation(cluster: StoreFixture.root.publicKey, grantID: g.id, revokedAt: 1, signer: StoreFixture.root)
        _ = try a.store.apply(r)
        _ = try a.store.apply(rev)
        _ = try b.store.apply(rev)
        #expect(try b.store.apply(r) != .accepted)
        #expect(a.store.treeHash == b.store.treeHash)
    }

    @Test func readsByPrefixAndPattern() throws {
        let t = try TempStore()
        for k in ["/app/a", "/app/b/c", "/app0", "/app-x", "/apps/q", "/z"] {
            _ = try t.store.apply(StoreFixture.record(k, "v"))
        }
        #expect(try t.store.records(under: Key("/app")).map(\.key.path) == ["/app/a", "/app/b/c"])
        #expect(try t.store.records(matching: Pattern("/app*/*")).map(\.key.path) == ["/app/a", "/apps/q"])
        #expect(try t.store.records(under: nil).count == 6)
    }

    @Test func wrongClusterIsRefusedAtOpen() throws {
        let t = try TempStore()
        #expect(throws: StoreError.self) { try Store(directory: t.directory, root: StoreFixture.alice.publicKey) }
    }

    @Test func changesAreStreamedInCommitOrder() async throws {
        let t = try TempStore()
        let changes = t.store.changes()
        let r1 = StoreFixture.record("/a", "1")
        let r2 = StoreFixture.record("/a", "2", counter: 1)
        _ = try t.store.apply(r1)
        _ = try t.store.apply(r2)
        var it = changes.makeAsyncIterator()
        #expect(await it.next() == .record(r1, previous: nil, origin: .local))
        #expect(await it.next() == .record(r2, previous: r1.version, origin: .local))
    }
}
