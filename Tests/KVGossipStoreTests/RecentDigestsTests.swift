import KVGossipCore
import Testing
@testable import KVGossipStore

/// What a store remembers of its last commits' digests (`RecentDigests`).
struct RecentDigestsTests {
    @Test func aCommitsRecordsAndUnsetsAreRemembered() throws {
        var recent = RecentDigests()
        let a = StoreFixture.record("/app/a", "1"), b = StoreFixture.record("/app/b", "1")
        #expect(recent.lookup(a.key) == nil)
        recent.note([.record(a, previous: nil, origin: .local), .record(b, previous: nil, origin: .local)])
        #expect(recent.lookup(a.key) == .some(a.digest) && recent.lookup(b.key) == .some(b.digest))
        recent.note([.unset(b.key, previous: b.version)])
        #expect(recent.lookup(b.key) == .some(nil), "an unset key is known to hold nothing")
    }

    @Test func aRevocationForgetsEverything() throws {
        var recent = RecentDigests()
        let a = StoreFixture.record("/app/a", "1"), b = StoreFixture.record("/app/b", "1")
        recent.note([.record(a, previous: nil, origin: .local)])
        let root = SigningKey.generate()
        let grant = try Grant(cluster: root.publicKey, issuer: root, issuee: SigningKey.generate().publicKey, patterns: [try Pattern("/**")],
                              mayDelegate: false, notBefore: 1, expires: nil, nonce: [UInt8](repeating: 1, count: 16))
        // Even the records of the same commit: a revocation may rewrite them after they were listed.
        recent.note([.record(b, previous: nil, origin: .local), .revocation(Revocation(cluster: root.publicKey, grant: grant, revokedAt: 2, signer: root))])
        #expect(recent.lookup(a.key) == nil && recent.lookup(b.key) == nil)
    }

    @Test func pastItsCapacityItStartsAgainEmpty() throws {
        var recent = RecentDigests()
        let records = (0...RecentDigests.capacity).map { StoreFixture.record("/k/\($0)", "v") }
        for r in records.dropLast() { recent.note([.record(r, previous: nil, origin: .local)]) }
        #expect(recent.count == RecentDigests.capacity)
        // A key already there is updated in place.
        recent.note([.record(records[0], previous: nil, origin: .local)])
        #expect(recent.count == RecentDigests.capacity)
        recent.note([.record(records.last!, previous: nil, origin: .local)])
        #expect(recent.count == 1 && recent.lookup(records.last!.key) == .some(records.last!.digest))
    }
}
