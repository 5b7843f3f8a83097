import Foundation
@testable import KVGossipClient
import KVGossipControl
import Testing

/// The shared state of one key, fed watch events by hand.
@Suite struct KeyInterestTests {
    func info(_ value: String?, state: String = "synced") -> RecordInfo {
        RecordInfo(
            key: "/k", kind: value == nil ? "tombstone" : "value", value: Data((value ?? "").utf8), timestamp: 7, time: "t",
            signer: "s", digest: value ?? "tomb", chain: ["root"], state: state, dirty: state != "synced", encoded: nil)
    }

    func event(_ kind: WatchEvent.Kind, record: RecordInfo? = nil, records: [RecordInfo]? = nil, state: String? = nil) -> WatchEvent {
        var e = WatchEvent(kind: kind)
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
        interest.apply(event(.initial, records: [], state: "pending-fetch"))
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
