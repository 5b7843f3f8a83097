import Testing

import KVGossipCore
import KVGossipTestSupport

@Suite struct MerkleNibblePathTests {
    let id = MerkleFixtures.hash(hex: "a3f0" + String(repeating: "5c", count: 30))

    @Test func childrenExtendByOneNibble() throws {
        let path = NibblePath.root.child(0xA).child(0x3)
        #expect(path.depth == 2)
        #expect(path.nibbles == [0xA, 0x3])
        #expect(path[1] == 0x3)
        #expect(path.hex == "a3")
        #expect(path.parent == NibblePath.root.child(0xA))
        #expect(NibblePath.root.parent == nil)
        #expect(path == NibblePath(nibbles: [0xA, 0x3]))
        #expect(NibblePath(nibbles: [16]) == nil)
        #expect(NibblePath(nibbles: [UInt8](repeating: 1, count: 65)) == nil)
    }

    @Test func containsChecksTheLeadingNibbles() {
        #expect(NibblePath.root.contains(id))
        #expect(NibblePath(hex: "a3f")!.contains(id))
        #expect(NibblePath(hex: "a3f05c5c")!.contains(id))
        #expect(!NibblePath(hex: "a3e")!.contains(id))
        #expect(!NibblePath(hex: "a3f05c5d")!.contains(id))
        #expect(NibblePath(prefixOf: id, depth: 64).contains(id))
        #expect(NibblePath(prefixOf: id, depth: 64).hex == id.hex)
        #expect(NibblePath(prefixOf: id, depth: 3) == NibblePath(hex: "a3f"))
    }

    @Test func boundsSpanExactlyThePrefix() {
        let path = NibblePath(hex: "a3f")!
        #expect(path.lowerBound == [0xA3, 0xF0] + [UInt8](repeating: 0x00, count: 30))
        #expect(path.upperBound == [0xA3, 0xFF] + [UInt8](repeating: 0xFF, count: 30))
        #expect(NibblePath.root.lowerBound == [UInt8](repeating: 0, count: 32))
        #expect(NibblePath.root.upperBound == [UInt8](repeating: 0xFF, count: 32))
        let full = NibblePath(prefixOf: id, depth: 64)
        #expect(full.lowerBound == id.bytes)
        #expect(full.upperBound == id.bytes)
        let inside = Hash256(bytes: path.upperBound)!
        #expect(path.contains(inside))
        #expect(path.contains(Hash256(bytes: path.lowerBound)!))
    }

    @Test func orderIsDepthFirstPreOrderAndMatchesHexOrder() {
        let paths = ["", "0", "00", "0f", "1", "a", "a0", "a00", "a01", "a1", "f", "ff"].map { NibblePath(hex: $0)! }
        var random = SeededRandom(seed: 3)
        #expect(paths == paths.shuffled(using: &random).sorted())
        #expect(paths.map(\.hex) == paths.map(\.hex).sorted())
        for (lower, higher) in zip(paths, paths.dropFirst()) {
            #expect(lower < higher)
            #expect(!(higher < lower))
        }
    }

    @Test func prefixRelation() {
        let a = NibblePath(hex: "a3")!
        #expect(a.isPrefix(of: a))
        #expect(a.isPrefix(of: NibblePath(hex: "a30")!))
        #expect(!a.isPrefix(of: NibblePath(hex: "a")!))
        #expect(!a.isPrefix(of: NibblePath(hex: "a40")!))
        #expect(NibblePath.root.isPrefix(of: a))
    }

    @Test func hexRoundTrips() {
        var random = SeededRandom(seed: 7)
        for depth in 0...64 {
            let path = NibblePath(prefixOf: random.hash(), depth: depth)
            #expect(NibblePath(hex: path.hex) == path)
            #expect(NibblePath(nibbles: path.nibbles) == path)
        }
        #expect(NibblePath(hex: "A3F") == NibblePath(hex: "a3f"))
        #expect(NibblePath(hex: "x") == nil)
        #expect(NibblePath.root.description == "<root>")
    }
}
