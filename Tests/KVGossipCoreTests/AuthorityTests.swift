import Testing
@testable import KVGossipCore

/// The authority rules of Docs/contract.md §Authority, case by case.
@Suite struct AuthorityTests {
    let v = Fixture.validator()
    let none: (Hash256) -> Bool = { _ in false }

    func verdict(_ r: Record, _ validator: RecordValidator? = nil, revoked: Set<Hash256> = []) -> AuthorityVerdict {
        (validator ?? v).validate(r, nowMs: Fixture.now, isRevoked: revoked.contains)
    }

    func reason(_ r: Record, _ validator: RecordValidator? = nil, revoked: Set<Hash256> = []) -> RefusalReason? {
        if case .refused(let refusal, _) = verdict(r, validator, revoked: revoked) { return refusal.reason }
        return nil
    }

    @Test func rootWritesDirectly() {
        let r = Fixture.record("/any/key", by: Fixture.root)
        #expect(verdict(r) == .authorized(chain: []))
    }

    @Test func oneLinkChain() {
        let g = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**"])
        #expect(verdict(Fixture.record("/app/db/url", by: Fixture.alice, pool: [g])) == .authorized(chain: [g]))
        #expect(reason(Fixture.record("/other", by: Fixture.alice, pool: [g])) == .noAuthority)
        #expect(reason(Fixture.record("/app/x", by: Fixture.alice, pool: [])) == .noAuthority)
    }

    @Test func threeLinkChainIsFoundInAnyPoolOrder() {
        let g1 = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**"], delegate: true)
        let g2 = Fixture.grant(Fixture.alice, to: Fixture.bob, ["/app/db/**"], delegate: true)
        let g3 = Fixture.grant(Fixture.bob, to: Fixture.carol, ["/app/db/url"])
        for pool in [[g1, g2, g3], [g3, g2, g1], [g2, g3, g1]] {
            #expect(verdict(Fixture.record("/app/db/url", by: Fixture.carol, pool: pool)) == .authorized(chain: [g1, g2, g3]))
        }
    }

    @Test func signerMustBeTheLastIssuee() {
        let g1 = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**"], delegate: true)
        let g2 = Fixture.grant(Fixture.alice, to: Fixture.bob, ["/app/**"])
        // Mallory presents a perfectly valid chain that ends at Bob, not at her.
        #expect(reason(Fixture.record("/app/x", by: Fixture.mallory, pool: [g1, g2])) == .noAuthority)
    }

    @Test func missingDelegateFlagBreaksTheChain() {
        let g1 = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**"], delegate: false)
        let g2 = Fixture.grant(Fixture.alice, to: Fixture.bob, ["/app/**"])
        #expect(reason(Fixture.record("/app/x", by: Fixture.bob, pool: [g1, g2])) == .noAuthority)
        // Alice herself may still write: the last link needs no delegate flag.
        #expect(verdict(Fixture.record("/app/x", by: Fixture.alice, pool: [g1, g2])) == .authorized(chain: [g1]))
    }

    @Test func widerSubgrantIsLimitedToTheIntersection() {
        let g1 = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**"], delegate: true)
        let g2 = Fixture.grant(Fixture.alice, to: Fixture.bob, ["/**"])
        #expect(verdict(Fixture.record("/app/x", by: Fixture.bob, pool: [g1, g2])) == .authorized(chain: [g1, g2]))
        #expect(reason(Fixture.record("/etc/passwd", by: Fixture.bob, pool: [g1, g2])) == .noAuthority)
    }

    @Test func revokedLinkIsRefusedWithTheRevokedID() {
        let g1 = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**"], delegate: true)
        let g2 = Fixture.grant(Fixture.alice, to: Fixture.bob, ["/app/**"])
        let r = Fixture.record("/app/x", by: Fixture.bob, pool: [g1, g2])
        guard case .refused(let refusal, let ids) = verdict(r, revoked: [g2.id]) else {
            Issue.record("expected a refusal")
            return
        }
        #expect(refusal.reason == .revoked)
        #expect(ids == [g2.id])
    }

    @Test func anotherValidChainSurvivesARevocation() {
        let g1 = Fixture.grant(Fixture.root, to: Fixture.bob, ["/app/**"], nonce: 1)
        let g2 = Fixture.grant(Fixture.root, to: Fixture.bob, ["/app/x"], nonce: 2)
        let r = Fixture.record("/app/x", by: Fixture.bob, pool: [g1, g2])
        #expect(verdict(r, revoked: [g1.id]) == .authorized(chain: [g2]))
    }

    @Test func expiredAndNotYetValidLinks() {
        let expired = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**"], notBefore: Fixture.now - 10_000, expires: Fixture.now - 1)
        #expect(reason(Fixture.record("/app/x", by: Fixture.alice, pool: [expired])) == .expired)
        let future = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**"], notBefore: Fixture.now + 60_000)
        #expect(reason(Fixture.record("/app/x", by: Fixture.alice, pool: [future])) == .expired)
        // Validity is judged at the record's own time: a record written while the grant was valid stays valid.
        let old = Fixture.record("/app/x", by: Fixture.alice, pool: [expired], at: Fixture.now - 5_000)
        #expect(verdict(old) == .authorized(chain: [expired]))
        // Expiry is exclusive.
        let edge = Fixture.record("/app/x", by: Fixture.alice, pool: [expired], at: Fixture.now - 1)
        #expect(reason(edge) == .expired)
    }

    @Test func chainLongerThanTheLimitIsRefused() {
        let people = (10..<20).map { Fixture.key(UInt8($0)) }
        var pool: [Grant] = []
        var issuer = Fixture.root
        for p in people {
            pool.append(Fixture.grant(issuer, to: p, ["/deep/**"], delegate: true))
            issuer = p
        }
        // people[7] is at depth 8 (allowed), people[8] at depth 9 (too long).
        #expect(verdict(Fixture.record("/deep/k", by: people[7], pool: pool)).chain?.count == 8)
        #expect(reason(Fixture.record("/deep/k", by: people[8], pool: pool)) == .noAuthority)
    }

    @Test func tamperedGrantSignatureIsIgnored() {
        let g = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**"])
        var bytes = g.encoded
        bytes[bytes.count - 1] ^= 1
        let forged = try! Grant(decoding: bytes)
        #expect(!forged.signatureIsValid)
        #expect(reason(Fixture.record("/app/x", by: Fixture.alice, pool: [forged])) == .noAuthority)
    }

    @Test func tamperedRecordSignatureIsBadSignature() {
        let r = Fixture.record("/app/x", by: Fixture.root)
        var bytes = r.encoded
        bytes[r.signedBytes.count] ^= 1  // first signature byte
        #expect(reason(try! Record(decoding: bytes)) == .badSignature)
    }

    @Test func junkPoolPlusOneGoodChain() {
        let good1 = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**"], delegate: true)
        let good2 = Fixture.grant(Fixture.alice, to: Fixture.bob, ["/app/b/*"])
        let selfIssued = Fixture.grant(Fixture.mallory, to: Fixture.bob, ["/**"], delegate: true)
        let otherCluster = Fixture.grant(Fixture.mallory, to: Fixture.bob, ["/**"], cluster: Fixture.mallory.publicKey)
        let unrelated = Fixture.grant(Fixture.root, to: Fixture.carol, ["/other/**"], delegate: true)
        let loopA = Fixture.grant(Fixture.carol, to: Fixture.mallory, ["/**"], delegate: true)
        let loopB = Fixture.grant(Fixture.mallory, to: Fixture.carol, ["/**"], delegate: true)
        var badSig = Fixture.grant(Fixture.root, to: Fixture.bob, ["/**"]).encoded
        badSig[badSig.count - 5] ^= 0x40
        let pool = [selfIssued, otherCluster, unrelated, loopA, loopB, try! Grant(decoding: badSig), good2, good1]
        #expect(verdict(Fixture.record("/app/b/c", by: Fixture.bob, pool: pool)) == .authorized(chain: [good1, good2]))
        #expect(reason(Fixture.record("/etc/x", by: Fixture.bob, pool: pool)) == .noAuthority)
    }

    /// A pool of junk is dropped before any signature is checked or pattern matched: grants that
    /// lie on no path from the root to the signer are never examined further.
    @Test func junkThatLeadsNowhereCostsNoSignatureCheck() {
        let cache = GrantVerificationCache()
        let v = RecordValidator(root: Fixture.cluster, cache: cache)
        // Costly patterns: many single-character globs over many segments.
        var costly: [String] = []
        for i in 0..<16 {
            let segments = [String](repeating: "*a*?*", count: 10 + i)
            costly.append("/" + segments.joined(separator: "/") + "/**")
        }
        var junk: [Grant] = []
        for i in 0..<30 {
            let issuer = Fixture.key(UInt8(100 + i)), issuee = Fixture.key(UInt8(101 + i))
            junk.append(Fixture.grant(issuer, to: issuee, costly, delegate: true, nonce: UInt8(i)))
        }
        #expect(reason(Fixture.record("/app/x", by: Fixture.bob, pool: junk), v) == .noAuthority)
        #expect(cache.count == 0, "no grant of the junk pool had its signature checked")

        // Only the grants on a path from the root to the signer are verified.
        let good1 = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**"], delegate: true)
        let good2 = Fixture.grant(Fixture.alice, to: Fixture.bob, ["/app/*"])
        #expect(verdict(Fixture.record("/app/x", by: Fixture.bob, pool: junk + [good2, good1]), v) == .authorized(chain: [good1, good2]))
        #expect(cache.count == 2)
    }

    @Test func recordFromAnotherClusterIsRefused() {
        let r = Fixture.record("/app/x", by: Fixture.mallory, cluster: Fixture.mallory.publicKey)
        #expect(reason(r) == .noAuthority)
    }

    @Test func futureRecordIsClockSkew() {
        let r = Fixture.record("/app/x", by: Fixture.root, at: Fixture.now + 31_000)
        #expect(reason(r) == .clockSkew)
        #expect(verdict(Fixture.record("/app/x", by: Fixture.root, at: Fixture.now + 29_000)) == .authorized(chain: []))
    }

    @Test func verifiedGrantsAreCachedByID() {
        let cache = GrantVerificationCache()
        let v = RecordValidator(root: Fixture.cluster, cache: cache)
        let g = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**"])
        for i in 0..<50 {
            _ = v.validate(Fixture.record("/app/k\(i)", by: Fixture.alice, pool: [g]), nowMs: Fixture.now, isRevoked: none)
        }
        #expect(cache.count == 1)
    }
}
