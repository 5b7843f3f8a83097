import Testing
@testable import KVGossipCore

@Suite struct OrderingTests {
    let digestA = Hash256(bytes: [UInt8](repeating: 1, count: 32))!
    let digestB = Hash256(bytes: [UInt8](repeating: 2, count: 32))!

    @Test func newerTimestampWins() {
        let old = RecordVersion(timestamp: HLC(physicalMs: 100), kind: .tombstone, digest: digestB)
        let new = RecordVersion(timestamp: HLC(physicalMs: 100, counter: 1), kind: .value, digest: digestA)
        #expect(old < new)
    }

    @Test func equalTimestampsTombstoneBeatsValue() {
        let value = RecordVersion(timestamp: HLC(physicalMs: 100), kind: .value, digest: digestB)
        let tomb = RecordVersion(timestamp: HLC(physicalMs: 100), kind: .tombstone, digest: digestA)
        #expect(value < tomb)
    }

    @Test func equalTimestampAndKindGreaterDigestWins() {
        let a = RecordVersion(timestamp: HLC(physicalMs: 100), kind: .value, digest: digestA)
        let b = RecordVersion(timestamp: HLC(physicalMs: 100), kind: .value, digest: digestB)
        #expect(a < b && !(b < a))
        // Every node picks the same winner whatever order it saw them in.
        #expect([a, b].max() == [b, a].max())
    }

    @Test func mintIsAheadOfClockCurrentAndLastMinted() {
        #expect(HLC.mint(nowMs: 1000, current: nil, lastMinted: nil) == HLC(physicalMs: 1000))
        // The current value is future-dated (another host's fast clock): a local edit still wins.
        let future = HLC(physicalMs: 5000, counter: 7)
        let minted = HLC.mint(nowMs: 1000, current: future, lastMinted: nil)
        #expect(minted > future && minted.raw == future.raw + 1)
        // Two mints in the same millisecond stay ordered.
        let first = HLC.mint(nowMs: 1000, current: nil, lastMinted: nil)
        let second = HLC.mint(nowMs: 1000, current: nil, lastMinted: first)
        #expect(second > first && second.physicalMs == 1000 && second.counter == 1)
    }

    /// The last minted timestamp counts only within the skew bound of the clock; further ahead it
    /// is set aside (the clock went back) and the clock and the key's current record rule.
    @Test func aClockThatWentBackSetsTheLastMintedAside() {
        let skew: UInt64 = 30_000
        let near = HLC(physicalMs: 1000 + skew)
        let kept = HLC.mintPlan(nowMs: 1000, current: nil, lastMinted: near, maxSkewMs: skew)
        #expect(kept.timestamp.raw == near.raw + 1 && kept.setAside == nil)

        let far = HLC(physicalMs: 1000 + skew + 1)
        let jumped = HLC.mintPlan(nowMs: 1000, current: nil, lastMinted: far, maxSkewMs: skew)
        #expect(jumped.timestamp == HLC(physicalMs: 1000) && jumped.setAside == far)

        // The key's own current record still orders the new one after it.
        let current = HLC(physicalMs: 2000, counter: 3)
        #expect(HLC.mintPlan(nowMs: 1000, current: current, lastMinted: far, maxSkewMs: skew).timestamp.raw == current.raw + 1)
    }

    @Test func skewBoundary() {
        let ts = HLC(physicalMs: 31_000)
        #expect(!ts.isTooFarAhead(ofNowMs: 1000, maxSkewMs: 30_000))
        #expect(HLC(physicalMs: 31_001).isTooFarAhead(ofNowMs: 1000, maxSkewMs: 30_000))
        #expect(!HLC(physicalMs: 1000).isTooFarBehind(ofNowMs: 31_000, maxSkewMs: 30_000))
        #expect(HLC(physicalMs: 999).isTooFarBehind(ofNowMs: 31_000, maxSkewMs: 30_000))
        #expect(!HLC(physicalMs: 5).isTooFarBehind(ofNowMs: 1000, maxSkewMs: 30_000))
    }

    @Test func rfc3339() {
        #expect(HLC(physicalMs: 0).rfc3339 == "1970-01-01T00:00:00.000Z")
        #expect(HLC(physicalMs: Fixture.now + 1_234).rfc3339 == "2026-11-27T00:00:01.234Z")
        #expect(HLC(physicalMs: 951_782_400_000).rfc3339 == "2000-02-29T00:00:00.000Z")
    }
}

@Suite struct RevocationCascadeTests {
    let v = Fixture.validator()

    @Test func recordWithTwoChainsSurvivesLosingOne() {
        let g1 = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**"], nonce: 1)
        let g2 = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/x"], nonce: 2)
        let r = Fixture.record("/app/x", by: Fixture.alice, pool: [g1, g2])
        let outcome = RevocationCascade.apply(to: r, validator: v, isRevoked: { $0 == g1.id })
        guard case .keep(let kept) = outcome else {
            Issue.record("expected keep, got \(outcome)")
            return
        }
        #expect(kept.pool == [g2])
        #expect(kept.digest == r.digest && kept.signatureIsValid)
    }

    @Test func recordWithOneChainIsUnset() {
        let g1 = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**"], delegate: true)
        let g2 = Fixture.grant(Fixture.alice, to: Fixture.bob, ["/app/**"])
        let r = Fixture.record("/app/x", by: Fixture.bob, pool: [g1, g2])
        #expect(RevocationCascade.apply(to: r, validator: v, isRevoked: { $0 == g1.id }) == .unset)
    }

    @Test func rootRecordsNeverLoseAuthority() {
        let g = Fixture.grant(Fixture.root, to: Fixture.alice, ["/**"])
        let r = Fixture.record("/x", by: Fixture.root, pool: [g])
        #expect(RevocationCascade.apply(to: r, validator: v, isRevoked: { _ in true }) == .keep(r.withPool([])))
    }
}

@Suite struct GrantIssuingTests {
    let cache = GrantVerificationCache()

    func issue(_ issuer: SigningKey, _ patterns: [String], proofs: [Grant]) throws(Refusal) -> [Grant] {
        try GrantIssuing.proofChain(
            root: Fixture.cluster, issuer: issuer.publicKey, patterns: patterns.map { try! Pattern($0) }, proofs: proofs,
            nowMs: Fixture.now, cache: cache)
    }

    @Test func rootMayGrantAnything() throws {
        #expect(try issue(Fixture.root, ["/**"], proofs: []) == [])
    }

    @Test func subsetIsAllowedAndShipsTheChain() throws {
        let g1 = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**"], delegate: true)
        #expect(try issue(Fixture.alice, ["/app/db/*", "/app/x"], proofs: [g1]) == [g1])
    }

    @Test func widerPatternIsRefusedAndNamed() {
        let g1 = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/*"], delegate: true)
        do {
            _ = try issue(Fixture.alice, ["/app/x", "/app/**"], proofs: [g1])
            Issue.record("wider grant accepted")
        } catch {
            #expect(error.reason == .noAuthority)
            #expect(error.detail.contains("/app/**"))
        }
    }

    @Test func unionOfOwnGrantsCounts() throws {
        let g1 = Fixture.grant(Fixture.root, to: Fixture.alice, ["/a/b/c"], delegate: true, nonce: 1)
        let g2 = Fixture.grant(Fixture.root, to: Fixture.alice, ["/a/*"], delegate: true, nonce: 2)
        #expect(throws: Refusal.self) { try issue(Fixture.alice, ["/a/*/c"], proofs: [g1, g2]) }
        let g3 = Fixture.grant(Fixture.root, to: Fixture.alice, ["/a/**"], delegate: true, nonce: 3)
        #expect(try issue(Fixture.alice, ["/a/*/c"], proofs: [g1, g3]).count == 2)
    }

    @Test func delegationNeedsTheFlag() {
        let g1 = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**"], delegate: false)
        do {
            _ = try issue(Fixture.alice, ["/app/x"], proofs: [g1])
            Issue.record("delegation without the flag accepted")
        } catch {
            #expect(error.detail.contains("delegation"))
        }
    }

    @Test func noProofIsRefused() {
        #expect(throws: Refusal.self) { try issue(Fixture.alice, ["/app/x"], proofs: []) }
    }
}
