import Foundation
import KVGossipCore
import Synchronization
import Testing
@testable import KVGossipStore

/// `records(matchingAny:)`: several patterns answered from one read transaction.
@Suite struct SelectionTests {
    @Test func answersTheUnionOnceEachInKeyOrder() throws {
        let t = try TempStore()
        for (key, value) in [("/a/1", "x"), ("/a/2", "y"), ("/b", "z"), ("/c/d/e", "w")] {
            #expect(try t.store.apply(StoreFixture.record(key, value)) == .accepted)
        }
        let patterns = try ["/a/*", "/a/1", "/c/**", "/nothing/**"].map { try Pattern($0) }
        #expect(try t.store.records(matchingAny: patterns).records.map(\.key.path) == ["/a/1", "/a/2", "/c/d/e"])
        #expect(try t.store.records(matchingAny: []).records.isEmpty)
    }

    /// Every commit writes the same number to two keys that two patterns select. Reads made while
    /// the commits land must never see the two disagree: each read is one moment of the store.
    @Test func patternsAreReadAtOneMomentWhileBatchesCommit() throws {
        let t = try TempStore()
        let store = t.store
        let commits = 300
        let done = Atomic<Bool>(false)
        let writer = Thread {
            for i in 1...commits {
                let batch = [
                    StoreFixture.record("/pair/left", "\(i)", counter: UInt16(i)),
                    StoreFixture.record("/pair/right/value", "\(i)", counter: UInt16(i)),
                ]
                _ = try? store.apply(batch)
            }
            done.store(true, ordering: .releasing)
        }
        writer.start()
        let patterns = try [Pattern("/pair/left"), Pattern("/pair/right/*")]
        var reads = 0
        var mixed: [String] = []
        while !done.load(ordering: .acquiring) {
            let values = try store.records(matchingAny: patterns).records.map { String(decoding: $0.value, as: UTF8.self) }
            if values.count == 2, values[0] != values[1] { mixed.append(values.joined(separator: "≠")) }
            reads += 1
        }
        #expect(mixed.isEmpty, "reads mixing two commits: \(mixed.prefix(5))")
        #expect(reads > 20, "too few reads overlapped the commits to show anything")
        #expect(try store.records(matchingAny: patterns).records.map { String(decoding: $0.value, as: UTF8.self) } == ["\(commits)", "\(commits)"])
    }

    /// The read is bounded: rows examined, records taken, and whatever `take` refuses; past a bound
    /// the answer says it is incomplete. A key that sorts inside a prefix's range without being
    /// below it ("/a-b" between "/a" and "/a/…") is not selected.
    @Test func aSelectionIsBoundedAndSaysWhenItIsAPart() throws {
        let t = try TempStore()
        for i in 0..<20 { #expect(try t.store.apply(StoreFixture.record("/many/\(i)", "v")) == .accepted) }
        #expect(try t.store.apply(StoreFixture.record("/many-not", "v")) == .accepted)
        let all = try [Pattern("/many/**")]
        let whole = try t.store.records(matchingAny: all)
        #expect(whole.complete && whole.records.count == 20)
        #expect(try t.store.records(matchingAny: all, rowLimit: 5).complete == false)
        let few = try t.store.records(matchingAny: all, recordLimit: 3)
        #expect(!few.complete && few.records.count == 3)
        var taken = 0
        let refused = try t.store.records(matchingAny: all) { _ in
            taken += 1
            return taken <= 7
        }
        #expect(!refused.complete && refused.records.count == 7)
    }
}
