import Foundation
@testable import KVGossipClient
import KVGossipControl
import Testing

/// How a list subscription folds in an answer that comes in pages, and a fall behind.
@Suite struct ListSubscriptionTests {
    static func info(_ key: String, _ value: String) -> RecordInfo {
        RecordInfo(
            key: key, kind: "value", value: Data(value.utf8), timestamp: 1, time: "t", signer: "s", digest: value, chain: ["root"],
            state: "synced", dirty: false, encoded: nil)
    }

    /// Events read so far, without waiting for more.
    static func drain(_ list: ListSubscription, count: Int) async -> [ListEvent] {
        var out: [ListEvent] = []
        var iterator = list.events.makeAsyncIterator()
        while out.count < count, let e = await iterator.next() { out.append(e) }
        return out
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

        var fell = WatchEvent(kind: .fellBehind)
        fell.key = nil
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
}
