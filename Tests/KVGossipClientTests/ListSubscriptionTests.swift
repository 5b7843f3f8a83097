import Foundation
@testable import KVGossipClient
import KVGossipControl
import Testing

/// How a list subscription folds in an answer that comes in pages, and a fall behind.
@Suite struct ListSubscriptionTests {
    static func info(_ key: String, _ value: String) -> CheckedRecord {
        let record = KeyRecord(key: key, value: Data(value.utf8), isTombstone: false, timestamp: 1, time: "t", signer: "s", digest: value, chain: ["root"])
        return CheckedRecord(key: key, result: .success(record), agentState: "synced")
    }

    static func forged(_ key: String) -> CheckedRecord {
        CheckedRecord(key: key, result: .failure(KVClientError(.unverifiedRecord, "forged", key: key, check: .badSignature)), agentState: "synced")
    }

    /// The first `count` events, or fewer when no more come within 10 s (so a test whose code
    /// is broken fails instead of waiting forever).
    static func drain(_ list: ListSubscription, count: Int) async -> [ListEvent] {
        await withTaskGroup(of: [ListEvent]?.self) { group in
            group.addTask {
                var out: [ListEvent] = []
                var iterator = list.events.makeAsyncIterator()
                // A cancelled reader's `next()` returns nil: it hands over what it read.
                while out.count < count, let e = await iterator.next() { out.append(e) }
                return out
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(10))
                return nil
            }
            var read: [ListEvent] = []
            while let done = await group.next() {
                group.cancelAll()
                if let done { read = done }
            }
            return read
        }
    }

    @Test func pagesAreAddedAsTheyComeAndTheLastOneSyncs() async {
        let client = KVClient(endpoints: [.unix("/nonexistent/kvgossip.sock")])
        let list = ListSubscription(pattern: "/a/**", id: 1, client: client)
        list.applyInitial([Self.info("/a/1", "1"), Self.info("/a/2", "2")], more: true)
        #expect(!list.isSynced && list.entries.count == 2)
        list.applyInitial([Self.info("/a/3", "3")], more: false)
        #expect(list.isSynced && list.entries.count == 3)
        let events = await Self.drain(list, count: 4)
        #expect(events.map(\.description) == ["added /a/1 (initial)", "added /a/2 (initial)", "added /a/3 (initial)", "synced (initial)"])
        await client.close()
    }

    @Test func afterFallingBehindTheNextAnswerIsComparedAndStaleKeysGo() async {
        let client = KVClient(endpoints: [.unix("/nonexistent/kvgossip.sock")])
        let list = ListSubscription(pattern: "/a/**", id: 1, client: client)
        list.applyInitial([Self.info("/a/1", "1"), Self.info("/a/2", "2"), Self.info("/a/3", "3")], more: false)
        _ = await Self.drain(list, count: 4)

        let fell = CheckedEvent(kind: .fellBehind)
        list.apply(fell)
        #expect(!list.isSynced)
        // Half an answer, then another fall: the half is not taken as the whole.
        list.applyInitial([Self.info("/a/1", "1")], more: true)
        list.apply(fell)
        list.applyInitial([Self.info("/a/1", "1"), Self.info("/a/2", "22")], more: true)
        list.applyInitial([Self.info("/a/4", "4")], more: false)
        #expect(list.isSynced)
        #expect(list.entries.mapValues { $0.string ?? "" } == ["/a/1": "1", "/a/2": "22", "/a/4": "4"])
        let events = await Self.drain(list, count: 4)
        #expect(events.map(\.description) == ["fell behind", "updated /a/2 (resync)", "added /a/4 (resync)", "removed /a/3 (resync)"])
        await client.close()
    }

    /// A record that failed verification changes nothing in the set: a held key keeps its
    /// verified record (and is not removed by the answer that failed it), a new key stays out,
    /// and each is reported `.unverified` and listed in `unverified` until a record verifies.
    @Test func forgedRecordsAreReportedAndNeverEnterTheSet() async {
        let client = KVClient(endpoints: [.unix("/nonexistent/kvgossip.sock")])
        let list = ListSubscription(pattern: "/a/**", id: 1, client: client)
        list.applyInitial([Self.info("/a/1", "1"), Self.forged("/a/2")], more: false)
        #expect(list.entries.mapValues { $0.string ?? "" } == ["/a/1": "1"])
        #expect(Set(list.unverified.keys) == ["/a/2"])
        var change = CheckedEvent(kind: .changed)
        change.record = Self.forged("/a/1")
        list.apply(change)
        var removal = CheckedEvent(kind: .removed)
        removal.key = "/a/1"
        removal.record = Self.forged("/a/1")
        list.apply(removal)
        #expect(list.entries.mapValues { $0.string ?? "" } == ["/a/1": "1"], "neither a forged change nor a forged tombstone applies")
        // The answer after a reconnect forges /a/1 again: it stays, and is not removed as unmentioned.
        list.connectionLost()
        list.applyInitial([Self.forged("/a/1"), Self.info("/a/2", "2")], more: false)
        #expect(list.entries.mapValues { $0.string ?? "" } == ["/a/1": "1", "/a/2": "2"])
        #expect(Set(list.unverified.keys) == ["/a/1"])
        let events = await Self.drain(list, count: 7)
        #expect(events.map(\.description) == [
            "added /a/1 (initial)", "unverified /a/2 (bad-signature)", "synced (initial)", "unverified /a/1 (bad-signature)",
            "connection lost", "added /a/2 (resync)", "synced (resync)",
        ])
        await client.close()
    }
}
