import Testing

@testable import KVGossipCore

/// The `kvgossip-hash` query rules (Docs/contract.md §Serf): who answers, and whom an answer sends
/// us to.
@Suite struct TreeHashQueryTests {
    static let ours = Hash256.of(Array("our tree".utf8))
    static let theirs = Hash256.of(Array("their tree".utf8))

    func announcement(_ name: String, tree: Hash256, cluster: PublicKey = Fixture.cluster, port: UInt16 = 7947) -> TreeHashAnnouncement {
        TreeHashAnnouncement(cluster: cluster, treeHash: tree, syncPort: port, nodeName: name)
    }

    var mine: TreeHashAnnouncement { announcement("b", tree: Self.ours, port: 7000) }

    @Test func aMemberWhoseTreeDiffersAnswersWithItsAnnouncement() {
        let query = announcement("a", tree: Self.theirs).encoded
        #expect(TreeHashQuery.reply(toQuery: query, mine: mine) == .answer(mine.encoded))
    }

    @Test func staysQuietForTheSameTreeItsOwnQueryAnotherClusterOrJunk() {
        let cases: [[UInt8]] = [
            announcement("a", tree: Self.ours).encoded,
            announcement("b", tree: Self.theirs).encoded,
            announcement("a", tree: Self.theirs, cluster: Fixture.mallory.publicKey).encoded,
            Array("KVH1 and then nothing".utf8),
            [],
        ]
        for query in cases {
            guard case .stayQuiet = TreeHashQuery.reply(toQuery: query, mine: mine) else {
                Issue.record("answered \(query.prefix(8))")
                continue
            }
        }
    }

    @Test func anAnswerSendsUsToTheMembersHostAtTheAnnouncedPort() {
        let answer = announcement("a", tree: Self.theirs, port: 7999).encoded
        #expect(TreeHashQuery.reconcileTarget(answer: answer, from: "a", memberHost: "10.0.0.7", mine: mine) == PeerAddress(host: "10.0.0.7", port: 7999))
        #expect(TreeHashQuery.reconcileTarget(answer: answer, from: "a", memberHost: "fd00::7", mine: mine)?.description == "[fd00::7]:7999")
    }

    @Test func noTargetFromOurselvesAStrangerAnotherClusterTheSameTreeOrPortZero() {
        let good = announcement("a", tree: Self.theirs).encoded
        #expect(TreeHashQuery.reconcileTarget(answer: good, from: "b", memberHost: "10.0.0.7", mine: mine) == nil)
        #expect(TreeHashQuery.reconcileTarget(answer: good, from: "a", memberHost: nil, mine: mine) == nil)
        #expect(TreeHashQuery.reconcileTarget(answer: good, from: "a", memberHost: "", mine: mine) == nil)
        let otherCluster = announcement("a", tree: Self.theirs, cluster: Fixture.mallory.publicKey).encoded
        #expect(TreeHashQuery.reconcileTarget(answer: otherCluster, from: "a", memberHost: "10.0.0.7", mine: mine) == nil)
        let sameTree = announcement("a", tree: Self.ours).encoded
        #expect(TreeHashQuery.reconcileTarget(answer: sameTree, from: "a", memberHost: "10.0.0.7", mine: mine) == nil)
        let portZero = announcement("a", tree: Self.theirs, port: 0).encoded
        #expect(TreeHashQuery.reconcileTarget(answer: portZero, from: "a", memberHost: "10.0.0.7", mine: mine) == nil)
        #expect(TreeHashQuery.reconcileTarget(answer: [1, 2, 3], from: "a", memberHost: "10.0.0.7", mine: mine) == nil)
    }
}
