import Foundation
import KVGossipCore
import KVGossipStore
import Testing
@testable import KVGossipControl

/// `history` pages (Docs/protocol.md §Control API): every version once, keys in order, newest first
/// within a key, whatever the page size.
@Suite struct HistoryReaderTests {
    static let root = SigningKey(seed: [UInt8](repeating: 1, count: 32))!
    static let now: UInt64 = 1_795_737_600_000

    static func reader(pageRecords: Int) throws -> (HistoryReader, String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-history-\(UUID().uuidString)").path
        let store = try Store(directory: directory, root: root.publicKey, clock: { now })
        for key in ["/p/a", "/p/b", "/p/c", "/q"] {
            for n in 0..<5 {
                let record = Record(
                    cluster: root.publicKey, key: try Key(key), kind: .value, value: Array("\(key) \(n)".utf8),
                    timestamp: HLC(physicalMs: now + UInt64(n)), signer: root, pool: [])
                _ = try store.apply(record)
            }
        }
        var limits = ControlLimits()
        limits.pageRecords = pageRecords
        return (HistoryReader(store: store, limits: limits) { [root.publicKey: "root"] }, directory)
    }

    static func all(_ reader: HistoryReader, key: Key?, pattern: Pattern?, limit: Int? = nil) throws -> (versions: [VersionInfo], pages: Int) {
        var out: [VersionInfo] = []
        var after: String?
        var pages = 0
        repeat {
            let page = try reader.page(key: key, pattern: pattern, after: after, limit: limit, encoding: true)
            out += page.versions
            after = page.next
            pages += 1
        } while after != nil && pages < 100
        return (out, pages)
    }

    static func values(_ versions: [VersionInfo]) -> [String] {
        versions.map { String(decoding: try! Record(decoding: [UInt8]($0.encoded!)).value, as: UTF8.self) }
    }

    @Test func patternPagesListEveryVersionOnceInOrder() throws {
        let expected = ["/p/a", "/p/b", "/p/c"].flatMap { key in (0..<5).reversed().map { "\(key) \($0)" } }
        for size in [1, 2, 3, 7, 1_000] {
            let (reader, directory) = try Self.reader(pageRecords: size)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let result = try Self.all(reader, key: nil, pattern: Pattern("/p/*"))
            #expect(Self.values(result.versions) == expected, "pages of \(size)")
            #expect(result.versions.map(\.current) == (0..<15).map { $0 % 5 == 0 })
            #expect(result.pages >= 15 / size, "pages of \(size)")
            #expect(Set(result.versions.map(\.signerName)) == ["root"])
        }
    }

    @Test func oneKeyPagesByLimitAndACursorFromElsewhereIsRefused() throws {
        let (reader, directory) = try Self.reader(pageRecords: 1_000)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let result = try Self.all(reader, key: Key("/q"), pattern: nil, limit: 2)
        #expect(Self.values(result.versions) == (0..<5).reversed().map { "/q \($0)" })
        #expect(result.pages == 3)
        #expect(throws: ControlError.self) { try reader.page(key: Key("/q"), pattern: nil, after: "v junk", limit: nil, encoding: false) }
        #expect(throws: ControlError.self) { try reader.page(key: Key("/q"), pattern: nil, after: nil, limit: 0, encoding: false) }
    }
}
