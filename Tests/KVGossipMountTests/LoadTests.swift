import Foundation
import KVGossipCore
import KVGossipNode
import KVGossipStore
import Logging
import Testing
@testable import KVGossipMount

/// The view a mount starts with, built from the store a page of records at a time.
@Suite struct LoadTests {
    @Test func pagesOfRecordsBuildTheWholeView() throws {
        let dir = "/tmp/kvg-mount-tests/load-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try Store(directory: dir, root: Keys.root.publicKey)
        let records = [
            ReplayPlanTests.record("/a", "a key that is also a prefix"),
            ReplayPlanTests.record("/a/b", "1"),
            ReplayPlanTests.record("/c/d/e", "22"),
            ReplayPlanTests.record("/c/gone", nil),
            ReplayPlanTests.record("/c/4913", "scratch name"),
            ReplayPlanTests.record("/z", "333"),
        ]
        #expect(try store.apply(records).allSatisfy(\.isAccepted))
        let ctx = MountContext(
            node: try Node(store: store, key: Keys.root), scratch: ScratchNames(patterns: MountOptions.defaultScratchPatterns),
            uid: 0, gid: 0, logger: Logger(label: "load"), values: ValueCache(budgetBytes: 1 << 20))
        var st = FSState(ctx: ctx)

        // Two records a page: every page boundary falls between keys the view relates.
        let read = try st.load(from: store, pageRows: 2)

        #expect(read == records.count)
        #expect(st.view["/a"]?.isDirectory == true)
        #expect(st.view["/a/b"]?.kind == .key && st.view["/a/b"]?.size == 1)
        #expect(st.view["/c"]?.isDirectory == true && st.view["/c/d"]?.isDirectory == true)
        #expect(st.view["/c/d/e"]?.size == 2 && st.view["/z"]?.size == 3)
        #expect(st.view["/c/gone"] == nil && st.view["/c/4913"] == nil)
        #expect(st.view["/"]?.children == ["a", "c", "z"] && st.view["/c"]?.children == ["d"])
    }
}
