import Foundation
@testable import KVGossipClient
import KVGossipTestSupport
import Testing

@Suite struct ListEventBufferTests {
    func record(_ key: String, _ value: String) -> KeyRecord {
        KeyRecord(key: key, value: Data(value.utf8), isTombstone: false, timestamp: 1, time: "t", signer: "s", digest: value, chain: [])
    }

    func drain(_ buffer: ListEventBuffer) async -> [ListEvent] {
        buffer.finish()
        var out: [ListEvent] = []
        for await e in ListEvents(buffer: buffer) { out.append(e) }
        return out
    }

    @Test func unreadEventsOfAKeyMergeIntoTheirNetEffect() async {
        let buffer = ListEventBuffer()
        buffer.push([.added(record("/a", "1"), .live), .updated(record("/a", "2"), .live)])
        buffer.push([.added(record("/b", "1"), .live), .removed(key: "/b", .live)])
        buffer.push([.removed(key: "/c", .live), .added(record("/c", "9"), .resync)])
        buffer.push([.updated(record("/d", "1"), .live), .removed(key: "/d", .resync)])
        #expect(await drain(buffer) == [
            .added(record("/a", "2"), .live),
            .updated(record("/c", "9"), .resync),
            .removed(key: "/d", .resync),
        ])
    }

    @Test func markersCollapseToTheLatestAndKeepTheirPlace() async {
        let buffer = ListEventBuffer()
        buffer.push([.connectionLost, .added(record("/a", "1"), .resync), .synced(.resync)])
        buffer.push([.connectionLost, .updated(record("/a", "2"), .resync), .synced(.resync)])
        #expect(await drain(buffer) == [.added(record("/a", "2"), .resync), .connectionLost, .synced(.resync)])
    }

    /// A reader that never reads while one key flaps a million times costs a bounded buffer.
    @Test func aStalledReaderCostsMemoryBoundedByTheSet() async {
        let buffer = ListEventBuffer()
        for i in 0..<100_000 {
            buffer.push([.added(record("/flap", "\(i)"), .live), .removed(key: "/flap", .live)])
            buffer.push([.updated(record("/steady", "\(i)"), .live)])
        }
        #expect(buffer.backlog < 200)
        #expect(await drain(buffer) == [.updated(record("/steady", "99999"), .live)])
    }

    @Test func aWaitingReaderIsWokenAndCancellationEndsIt() async {
        let buffer = ListEventBuffer()
        let reader = Task { await buffer.next() }
        #expect(await Readiness.waitAsync { buffer.hasWaitingReader })
        buffer.push([.synced(.initial)])
        #expect(await reader.value == .synced(.initial))

        let cancelled = Task { await buffer.next() }
        #expect(await Readiness.waitAsync { buffer.hasWaitingReader })
        cancelled.cancel()
        #expect(await cancelled.value == nil)
    }
}
