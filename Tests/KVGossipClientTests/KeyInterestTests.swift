import Foundation
@testable import KVGossipClient
import KVGossipControl
import Testing

/// The shared state of one key, fed watch events by hand.
@Suite struct KeyInterestTests {
    func info(_ value: String?, state: String = "synced") -> CheckedRecord {
        let record = KeyRecord(
            key: "/k", value: Data((value ?? "").utf8), isTombstone: value == nil, timestamp: 7, time: "t", signer: "s",
            digest: value ?? "tomb", chain: ["root"])
        return CheckedRecord(key: "/k", result: .success(record), agentState: state)
    }

    func forged(_ check: KVClientError.Reason = .badSignature) -> CheckedRecord {
        let error = KVClientError(.unverifiedRecord, "forged", key: "/k", check: check)
        return CheckedRecord(key: "/k", result: .failure(error), agentState: "synced")
    }

    func event(_ kind: WatchEvent.Kind, record: CheckedRecord? = nil, records: [CheckedRecord] = [], state: String? = nil) -> CheckedEvent {
        var e = CheckedEvent(kind: kind)
        e.key = "/k"
        e.record = record
        e.records = records
        e.state = state
        return e
    }

    /// The agent's dirtiness task can overtake the watch's first answer; the key must stay dirty
    /// until that answer is in.
    @Test func aStateEventBeforeTheFirstAnswerLeavesTheKeyDirty() {
        let interest = KeyInterest(key: "/k", dirtiness: .awaitingAnswer)
        interest.apply(event(.state, state: "synced"))
        #expect(interest.dirtiness == .awaitingAnswer)
        #expect(interest.value == .unknown)
        interest.apply(event(.initial, state: "pending-fetch"))
        #expect(interest.value == .absent)
        #expect(interest.dirtiness == .agent("pending-fetch"))
        interest.apply(event(.state, state: "synced"))
        #expect(interest.dirtiness == .synced)
        // A new connection: dirty again until its own first answer, whatever the agent says.
        interest.setConnectionState(.awaitingAnswer)
        interest.apply(event(.state, state: "synced"))
        #expect(interest.dirtiness.isDirty)
    }

    @Test func tombstonesAndUnsetsAreToldApart() {
        let interest = KeyInterest(key: "/k", dirtiness: .awaitingAnswer)
        interest.apply(event(.initial, records: [info("a")], state: "synced"))
        #expect(interest.value.string == "a")
        interest.apply(event(.removed, record: info(nil)))
        guard case .deleted(let tomb) = interest.value else {
            Issue.record("a tombstone should read as deleted, got \(interest.value)")
            return
        }
        #expect(tomb.isTombstone)
        interest.apply(event(.changed, record: info("b", state: "pending-push")))
        #expect(interest.value.string == "b")
        #expect(interest.dirtiness == .agent("pending-push"))
        interest.apply(event(.removed))
        #expect(interest.value == .absent, "a revocation unset carries no record")
    }

    /// A record that failed verification is never the value: the last verified one stays, marked
    /// unverified, until a record that verifies (or a new connection) replaces the mark.
    @Test func aForgedRecordLeavesTheLastVerifiedValueMarkedUnverified() {
        let interest = KeyInterest(key: "/k", dirtiness: .awaitingAnswer)
        interest.apply(event(.initial, records: [forged()], state: "synced"))
        #expect(interest.value == .unknown, "no verified value yet")
        #expect(interest.dirtiness == .unverified(KVClientError(.unverifiedRecord, "forged", key: "/k", check: .badSignature)))
        interest.apply(event(.changed, record: info("a")))
        #expect(interest.value.string == "a" && interest.dirtiness == .synced)
        interest.apply(event(.changed, record: forged(.noAuthority)))
        #expect(interest.value.string == "a")
        guard case .unverified(let error) = interest.dirtiness else {
            Issue.record("a forged change should mark the key unverified, got \(interest.dirtiness)")
            return
        }
        #expect(error.check == .noAuthority && error.key == "/k" && interest.dirtiness.isDirty)
        interest.apply(event(.state, state: "synced"))
        #expect(interest.dirtiness.isDirty, "the agent saying synced does not clear it")
        interest.apply(event(.removed, record: forged()))
        #expect(interest.value.string == "a", "a forged tombstone deletes nothing")
        interest.apply(event(.changed, record: info("b")))
        #expect(interest.value.string == "b" && interest.dirtiness == .synced)
    }

    /// Streams hold only the newest unread value and end when their subscription detaches.
    @Test func streamsKeepOnlyTheNewestAndEndOnDetach() async {
        let interest = KeyInterest(key: "/k", dirtiness: .awaitingAnswer)
        interest.attach(owner: 1)
        let stream = interest.valueStream(owner: 1)
        interest.apply(event(.initial, records: [info("a")], state: "synced"))
        for v in ["b", "c", "d"] { interest.apply(event(.changed, record: info(v))) }
        interest.detach(owner: 1)
        var seen: [String] = []
        for await v in stream { seen.append(v.string ?? "\(v)") }
        #expect(seen == ["d"])
        var late = 0
        for await _ in interest.valueStream(owner: 1) { late += 1 }
        #expect(late == 0, "a detached owner gets an ended stream")
    }
}
