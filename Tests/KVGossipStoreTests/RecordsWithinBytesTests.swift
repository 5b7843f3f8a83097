import KVGossipCore
import Testing
@testable import KVGossipStore

/// A sync reads the records at positions a batch at a time, up to the batch's bytes; a record the
/// batch cannot hold ends the read and is left for the next one.
struct RecordsWithinBytesTests {
    @Test func recordsAreReadInOrderUpToTheBytesGiven() throws {
        let t = try TempStore()
        let small = StoreFixture.record("/s", "v")
        let big = StoreFixture.record("/b", String(repeating: "x", count: 5_000))
        let other = StoreFixture.record("/o", "w")
        _ = try t.store.apply([small, big, other])
        let absent = Hash256.of([9])
        let ids = [absent] + [small, big, other].map { SummaryEntries.keyHash($0.key) }

        // The big one does not fit: reading stops before it, the absent position counted as read.
        let part = try t.store.records(atKeyHashes: ids, maxBytes: small.encoded.count + 100, firstAnySize: false)
        #expect(part.records.map(\.key.path) == ["/s"])
        #expect(part.consumed == 2)

        // The first found is taken whatever its size when asked to; the rest must still fit.
        let first = try t.store.records(atKeyHashes: Array(ids[2...]), maxBytes: 10, firstAnySize: true)
        #expect(first.records.map(\.key.path) == ["/b"])
        #expect(first.consumed == 1)
        let none = try t.store.records(atKeyHashes: Array(ids[2...]), maxBytes: 10, firstAnySize: false)
        #expect(none.records.isEmpty && none.consumed == 0)

        let all = try t.store.records(atKeyHashes: ids, maxBytes: .max, firstAnySize: false)
        #expect(all.records.map(\.key.path) == ["/s", "/b", "/o"])
        #expect(all.consumed == 4)

        // Keys alone, for marking key states: absent positions skipped.
        #expect(try t.store.keys(atKeyHashes: ids).map(\.path) == ["/s", "/b", "/o"])
    }
}
