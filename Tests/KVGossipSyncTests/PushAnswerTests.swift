import Foundation
import KVGossipCore
import Synchronization
import Testing
@testable import KVGossipSync

/// A push's answer is taken where it arrives (`PushAnswer`): counted and ended there, with no task
/// or thread of its own, unless it carries revocations, which go to the store's threads.
struct PushAnswerTests {
    @Test func anAnswerIsTakenWhereItArrivesAndEndsThePushOnce() throws {
        let probe = try Probe(records: 2)
        let step = probe.answer.receive(.message(.results([PushResult(code: .accepted), PushResult(code: .refused, reason: .noAuthority)])))
        #expect(step == .end(replies: []))
        #expect(probe.handedToStore.count == 0)
        let outcomes = probe.outcomes
        #expect(outcomes == ["answered \(probe.records[0].key.path)=held \(probe.records[1].key.path)=not held"])
        // The link closing afterwards, or a nudge, changes nothing.
        _ = probe.answer.receive(.closed)
        #expect(probe.answer.receive(.nudge) == .goOn)
        #expect(probe.outcomes.count == 1)
    }

    @Test func anAnswerCarryingRevocationsIsTakenOnTheStoresThreads() throws {
        let probe = try Probe(records: 1)
        let grant = try Grant(cluster: probe.root.publicKey, issuer: probe.root, issuee: SigningKey.generate().publicKey, patterns: [try Pattern("/**")],
                              mayDelegate: false, notBefore: 1, expires: nil, nonce: [UInt8](repeating: 1, count: 16))
        let revocation = Revocation(cluster: probe.root.publicKey, grant: grant, revokedAt: 2, signer: probe.root)
        let step = probe.answer.receive(.message(.results([PushResult(code: .refused, reason: .revoked, revocations: [revocation])])))
        #expect(step == .end(replies: []))
        // Nothing taken yet: the answer waits for a store thread.
        #expect(probe.outcomes.isEmpty && probe.state.revocationsApplied.withLock { $0 } == 0)
        let work = try #require(probe.handedToStore.first)
        work(true)
        #expect(probe.state.revocationsApplied.withLock { $0 } == 1)
        #expect(probe.outcomes == ["answered \(probe.records[0].key.path)=not held"])

        // Once the store's threads have stopped, the answer is not taken: the push ends unanswered.
        let late = try Probe(records: 1)
        _ = late.answer.receive(.message(.results([PushResult(code: .refused, reason: .revoked, revocations: [revocation])])))
        let lateWork = try #require(late.handedToStore.first)
        lateWork(false)
        #expect(late.state.revocationsApplied.withLock { $0 } == 0)
        #expect(late.outcomes.first?.hasPrefix("failed") == true)
    }

    @Test func anAnswerThatDoesNotFitThePushIsRefusedToThePeer() throws {
        let probe = try Probe(records: 2)
        let step = probe.answer.receive(.message(.results([PushResult(code: .accepted)])))
        guard case .end(let replies) = step, case .failure(let text)? = replies.first else {
            Issue.record("the peer was not told: \(step)")
            return
        }
        #expect(text.contains("1 results for 2 records"))
        #expect(probe.outcomes.first?.hasPrefix("failed") == true)
    }

    @Test func aPeerSilentPastTheStallTimeoutEndsThePush() throws {
        let patient = try Probe(records: 1, stallTimeout: .seconds(3600))
        #expect(patient.answer.receive(.nudge) == .goOn)
        #expect(patient.outcomes.isEmpty)
        let hasty = try Probe(records: 1, stallTimeout: .zero)
        #expect(hasty.answer.receive(.nudge) == .end(replies: []))
        #expect(hasty.outcomes.first?.contains("said nothing for") == true)
    }

    @Test func aLinkClosedBeforeTheAnswerEndsThePush() throws {
        let probe = try Probe(records: 1)
        _ = probe.answer.receive(.closed)
        #expect(probe.outcomes.first?.contains("closed mid-session") == true)
        // An answer that comes anyway is not taken.
        _ = probe.answer.receive(.message(.results([PushResult(code: .accepted)])))
        #expect(probe.outcomes.count == 1)
    }

    /// A push of `records` fresh records, what it ended with, and what it handed to the store.
    final class Probe: Sendable {
        let root = SigningKey.generate()
        let records: [Record]
        let state = RevocationCounter()
        let answer: PushAnswer
        private let log = Log()
        var outcomes: [String] { log.outcomes.withLock { $0 } }
        var handedToStore: [@Sendable (Bool) -> Void] { log.handedToStore.withLock { $0 } }

        final class Log: Sendable {
            let outcomes = Mutex<[String]>([])
            let handedToStore = Mutex<[@Sendable (Bool) -> Void]>([])
        }

        init(records count: Int, stallTimeout: Duration = .seconds(30)) throws {
            let root = self.root
            records = try (0..<count).map { i in
                Record(cluster: root.publicKey, key: try Key("/k/\(i)"), kind: .value, value: Array("v".utf8),
                       timestamp: HLC(physicalMs: 1_700_000_000_000), signer: root, pool: [])
            }
            var pusher = SyncPusher(state: state, peer: "peer", records: records)
            _ = try pusher.start()
            let log = self.log
            answer = PushAnswer(pusher, stallTimeout: stallTimeout, storeWork: { work in log.handedToStore.withLock { $0.append(work) } }) { outcome in
                let text: String
                switch outcome {
                case .answered(let results): text = "answered " + results.map { "\($0.key.path)=\($0.held ? "held" : "not held")" }.joined(separator: " ")
                case .failed(let error): text = "failed \(error)"
                }
                log.outcomes.withLock { $0.append(text) }
            }
        }
    }

    /// A node's sync state that only counts revocations applied (all a push's answer may ask of it).
    final class RevocationCounter: SyncLocalState, Sendable {
        let revocationsApplied = Mutex(0)
        var cluster: PublicKey { PublicKey(bytes: [UInt8](repeating: 0, count: 32))! }
        func treeHash() throws -> Hash256 { Hash256.of([]) }
        func view(_ query: ViewQuery) throws -> MerkleNodeView { throw Unused() }
        func entryCount(_ space: SummarySpace, under prefix: NibblePath) throws -> Int { throw Unused() }
        func records(at ids: [Hash256], maxBytes: Int, firstAnySize: Bool) throws -> (records: [Record], consumed: Int) { throw Unused() }
        func revocations(for grantIDs: [Hash256]) throws -> [Revocation] { throw Unused() }
        func storedDigests(of keys: [Key]) throws -> [Hash256?] { throw Unused() }
        func apply(records: [Record], from peer: String, arrival: RecordArrival) throws -> [PushResult] { throw Unused() }
        func apply(revocations: [Revocation], from peer: String) throws -> Int {
            revocationsApplied.withLock { $0 += revocations.count }
            return 0
        }
        func willExchange(records ids: [Hash256], with peer: String) {}
        func didExchange(records ids: [Hash256], with peer: String) {}
        struct Unused: Error {}
    }
}
