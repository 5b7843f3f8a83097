import Foundation
import KVGossipCore
@testable import KVGossipControl
import KVGossipNet
import Testing

/// The pure rules behind bounded answers and connections that earn their slot.
@Suite struct ControlRulesTests {
    static func info(_ key: String, value bytes: Int, encoded: Int? = nil) -> RecordInfo {
        RecordInfo(
            key: key, kind: "value", value: Data(count: bytes), timestamp: 1, time: "2026-01-01T00:00:00.000Z",
            signer: "ed25519:" + String(repeating: "A", count: 43), digest: String(repeating: "0", count: 64), chain: ["root"],
            state: "synced", dirty: false, encoded: encoded.map { Data(count: $0) })
    }

    @Test func aPageHoldsAtLeastOneRecordAndStopsAtItsCountOrBytes() throws {
        var byCount = PageBudget(maxRecords: 3, maxBytes: 1 << 20)
        #expect((0..<5).filter { byCount.admit(Self.info("/k\($0)", value: 10)) }.count == 3)

        var byBytes = PageBudget(maxRecords: 1_000, maxBytes: 10_000)
        let big = byBytes.admit(Self.info("/big", value: 1 << 20))
        let small = byBytes.admit(Self.info("/small", value: 1))
        #expect(big, "one record too large for any page still travels")
        #expect(!small)

        // The estimate is never below the JSON actually sent.
        for (value, encoded) in [(0, nil), (1, nil), (3_000, nil), (0, 500), (70_000, 70_400)] as [(Int, Int?)] {
            let record = Self.info("/a/b/c", value: value, encoded: encoded)
            let json = try JSONEncoder().encode(record)
            #expect(PageBudget.estimatedBytes(record) >= json.count, "value \(value), encoded \(String(describing: encoded))")
        }
    }

    @Test func aRecordInfoCarriesItsValueOnce() throws {
        let signer = SigningKey(seed: [UInt8](repeating: 4, count: 32))!
        let record = Record(
            cluster: signer.publicKey, key: try Key("/v"), kind: .value, value: Array("the value".utf8), timestamp: HLC(physicalMs: 1),
            signer: signer, pool: [])
        var info = Self.info("/v", value: 0)
        info.value = Data(record.value)
        let plain = String(decoding: try JSONEncoder().encode(info), as: UTF8.self)
        #expect(plain.contains("\"value\":") && !plain.contains("\"encoded\":"))
        info.encoded = Data(record.encoded)
        let verifiable = try JSONEncoder().encode(info)
        #expect(!String(decoding: verifiable, as: UTF8.self).contains("\"value\":"))
        #expect(try JSONDecoder().decode(RecordInfo.self, from: verifiable).value == Data("the value".utf8), "taken from the encoding")
    }

    @Test func selectionsMatchWhatTheirRequestsName() throws {
        func selection(_ build: (inout ControlRequest) -> Void) throws -> KeySelection {
            var r = ControlRequest(id: 1, op: .watch)
            build(&r)
            return try KeySelection(r)
        }
        func key(_ text: String) -> Key { try! Key(text) }
        let prefix = try selection { $0.prefix = "/a" }
        #expect(prefix.contains(key("/a")) && prefix.contains(key("/a/b/c")))
        #expect(!prefix.contains(key("/a-b")) && !prefix.contains(key("/ab")))
        let everything = try [selection { $0.prefix = "/" }, selection { $0.prefix = "" }, selection { _ in }]
        #expect(everything.allSatisfy { $0 == .prefix(nil) })
        let pattern = try selection { $0.pattern = "/a/*/url" }
        #expect(pattern.contains(key("/a/db/url")) && !pattern.contains(key("/a/db/x/url")))
        #expect(pattern.scanPrefix == key("/a"))
        let all = try selection { $0.pattern = "/**" }
        #expect(all.scanPrefix == nil)
        let one = try selection { $0.key = "/a/b" }
        #expect(one.contains(path: "/a/b") && !one.contains(path: "/a/b/c") && one.singleKey == key("/a/b"))
        #expect(throws: ControlError.self) { try selection { $0.prefix = "no-slash" } }
    }

    @Test func frameProgressKnowsWhenAStreamEndsInsideAFrame() {
        var p = FrameProgress()
        var began = p.consume([0, 0])
        #expect(began && p.isInsideFrame, "half a header is inside a frame that began here")
        began = p.consume([0, 3, 1])
        #expect(!began && p.isInsideFrame, "still the same frame")
        began = p.consume([2, 3])
        #expect(!began && !p.isInsideFrame, "complete")
        began = p.consume([0, 0, 0, 1, 9, 0, 0, 0, 0])
        #expect(!began && !p.isInsideFrame, "two whole frames, one of them empty")
        began = p.consume([0, 0, 0, 2, 7, 7, 0, 0, 0, 5, 1])
        #expect(began && p.isInsideFrame, "a frame, then the start of another")
        began = p.consume([2, 3, 4, 5])
        #expect(!began && !p.isInsideFrame)
    }

    @Test func aBacklogFallsBehindInsteadOfGrowingAndStartsAgainAfterSayingSo() {
        var backlog = WatchBacklog(limit: 2)
        var room = 3
        let share = { () -> Bool in
            guard room > 0 else { return false }
            room -= 1
            return true
        }
        let first = backlog.push(.defaultState(.synced), share: share)
        let second = backlog.push(.defaultState(.unsynced), share: share)
        #expect(first == 0 && second == 0)
        let third = backlog.push(.defaultState(.synced), share: share)
        #expect(third == 2, "full: the two queued give their room back")
        let popped = backlog.pop()
        #expect(backlog.fellBehind && backlog.count == 0 && popped == nil)
        let whileBehind = backlog.push(.defaultState(.synced), share: share)
        #expect(whileBehind == 0 && backlog.count == 0, "nothing is queued while behind")
        backlog.resume()
        room = 0
        let noRoom = backlog.push(.defaultState(.synced), share: share)
        #expect(noRoom == 0 && backlog.fellBehind, "no room on the connection is falling behind too")
    }

    @Test func connectionsAreCountedPerTransportAndPerAddress() {
        var limits = ControlLimits()
        limits.connections = 3
        limits.connectionsPerAddress = 2
        var counts = ConnectionCounts()
        let answers = [
            counts.admit(.remote, address: "10.0.0.1", limits: limits), counts.admit(.remote, address: "10.0.0.1", limits: limits),
            counts.admit(.remote, address: "10.0.0.1", limits: limits), counts.admit(.remote, address: "10.0.0.2", limits: limits),
            counts.admit(.remote, address: "10.0.0.3", limits: limits), counts.admit(.local, address: nil, limits: limits),
        ]
        #expect(answers[0] == nil && answers[1] == nil && answers[3] == nil)
        #expect(answers[2]?.contains("from 10.0.0.1") == true)
        #expect(answers[4]?.contains("3 control connections on its TCP listener") == true)
        #expect(answers[5] == nil, "the Unix socket counts apart")
        counts.release(.remote, address: "10.0.0.1")
        let again = counts.admit(.remote, address: "10.0.0.1", limits: limits)
        #expect(again == nil)
    }

    @Test func theFirstShadowedKeysAreTheSmallestInByteOrder() {
        let keys: Set = ["/b", "/a/z", "/a", "/c", "/a-1", "/B"]
        #expect(ShadowedValues.smallest(3, of: keys) == ["/B", "/a", "/a-1"])
        #expect(ShadowedValues.smallest(10, of: keys).count == 6)
        #expect(ShadowedValues.within("/b", after: "/a", upTo: "/b") && !ShadowedValues.within("/a", after: "/a", upTo: nil))
    }
}
