import Foundation
import KVGossipCore
import Testing
@testable import KVGossipStore

/// The read paths behind answers of any size: keyset scans, counts and the shadowing probes.
@Suite struct ScanTests {
    /// Every key the scan takes, page after page of `rows` rows, and the number of pages.
    static func pages(_ store: Store, under prefix: String?, rows: Int, tombstones: Bool = false) throws -> (keys: [String], pages: Int) {
        var keys: [String] = []
        var cursor: String?
        var pages = 0
        repeat {
            pages += 1
            cursor = try store.scanRecords(under: prefix.map { try Key($0) }, after: cursor, rowLimit: rows) { path, kind, _ in
                if kind == .value || tombstones { keys.append(path) }
                return .next
            }
        } while cursor != nil && pages < 1_000
        return (keys, pages)
    }

    static func filled(_ paths: [String], tombstones: [String] = []) throws -> TempStore {
        let t = try TempStore()
        _ = try t.store.apply(paths.map { StoreFixture.record($0, "v") } + tombstones.map { StoreFixture.record($0, nil) })
        return t
    }

    @Test func aPrefixScanTakesTheKeyAndWhatIsBelowItInKeyOrderAcrossPages() throws {
        let t = try Self.filled(["/a", "/a-b", "/a.c", "/a/x", "/a/y/z", "/a0", "/b", "/a/w"])
        let all = try Self.pages(t.store, under: nil, rows: 3)
        #expect(all.keys == ["/a", "/a-b", "/a.c", "/a/w", "/a/x", "/a/y/z", "/a0", "/b"])
        #expect(all.pages == 3)
        for rows in [1, 2, 100] {
            #expect(try Self.pages(t.store, under: "/a", rows: rows).keys == ["/a", "/a/w", "/a/x", "/a/y/z"], "pages of \(rows)")
        }
        #expect(try Self.pages(t.store, under: "/a/y", rows: 1).keys == ["/a/y/z"])
        #expect(try Self.pages(t.store, under: "/nothing", rows: 5).keys.isEmpty)
    }

    /// After a full scan the mount gives back the readers' memory (their connections close); reads
    /// and writes go on as before, on connections opened again.
    @Test func readsAndWritesGoOnAfterTheReadMemoryIsGivenBack() throws {
        let t = try Self.filled(["/m/a", "/m/b", "/m/c"])
        #expect(try Self.pages(t.store, under: nil, rows: 2).keys == ["/m/a", "/m/b", "/m/c"])
        t.store.releaseReadMemory()
        #expect(try Self.pages(t.store, under: nil, rows: 2).keys == ["/m/a", "/m/b", "/m/c"])
        _ = try t.store.apply([StoreFixture.record("/m/d", "v")])
        t.store.releaseReadMemory()
        #expect(try Self.pages(t.store, under: "/m", rows: 10).keys == ["/m/a", "/m/b", "/m/c", "/m/d"])
        #expect(try t.store.record(Key("/m/d"))?.value == Array("v".utf8))
    }

    @Test func aScanStopsBeforeARowItDoesNotTakeAndResumesThere() throws {
        let t = try Self.filled((0..<10).map { "/k/\($0)" })
        var first: [String] = []
        let cursor = try t.store.scanRecords(under: nil, after: nil, rowLimit: 100) { path, _, load in
            guard first.count < 4 else { return .stopBefore }
            let decoded = try load().key.path
            #expect(decoded == path, "the record decodes on demand")
            first.append(path)
            return .next
        }
        #expect(first == ["/k/0", "/k/1", "/k/2", "/k/3"])
        #expect(cursor == "/k/3")
        let rest = try Self.pages(t.store, under: "/k", rows: 100)
        #expect(rest.keys.count == 10)
        var after: [String] = []
        _ = try t.store.scanRecords(under: nil, after: cursor, rowLimit: 100) { path, _, _ in
            after.append(path)
            return .next
        }
        #expect(after.first == "/k/4" && after.count == 6)
    }

    @Test func countsNeedNoDecodingAndFollowTheTreeHash() throws {
        let t = try Self.filled(["/a", "/b", "/c"], tombstones: ["/gone"])
        let counts = try t.store.counts()
        #expect(counts.values == 3 && counts.records == 4 && counts.revocations == 0)
        #expect(counts.treeHash == t.store.treeHash)
        #expect(try t.store.heldGrantCount() == 0)

        // Past 16 records the summary's root is a stored node, whose count is read instead.
        let big = try Self.filled((0..<300).map { "/k/\($0)" }, tombstones: (0..<40).map { "/t/\($0)" })
        _ = try big.store.apply((0..<10).map { StoreFixture.record("/k/\($0)", nil, at: StoreFixture.now + 1) })
        let bigCounts = try big.store.counts()
        #expect(bigCounts.records == 340 && bigCounts.values == 290, "\(bigCounts)")
    }

    @Test func valuesWithValuesBelowAreFoundByProbeAndByScan() throws {
        let t = try Self.filled(["/a", "/a/b/c", "/a-b", "/x/y", "/x/y/z", "/x", "/p/q", "/t"], tombstones: ["/t/u", "/p"])
        let keys = try ["/a", "/a-b", "/x", "/x/y", "/p", "/t", "/a/b"].map { try Key($0) }
        #expect(try t.store.valuesWithValuesBelow(among: keys) == ["/a", "/x", "/x/y"])
        var found: [String] = []
        var cursor: String?
        repeat {
            let step = try t.store.valuesWithValuesBelow(after: cursor, rowLimit: 2)
            found += step.keys
            cursor = step.next
        } while cursor != nil
        #expect(found == ["/a", "/x", "/x/y"])
    }
}
