import Testing
@testable import KVGossipCore

/// `Hash256` keeps its 32 bytes as four words: every way in and out must agree with the bytes, and
/// its order must be the bytes' order (sets of digests sort the same on every node).
@Suite struct Hash256Tests {
    static func random(_ g: inout SplitMix64) -> [UInt8] { (0 ..< 32).map { _ in UInt8.random(in: 0 ... 255, using: &g) } }

    @Test func bytesInAndOutAgreeWhicheverWayTheyCome() {
        var g = SplitMix64(seed: 9)
        for _ in 0 ..< 200 {
            let bytes = Self.random(&g)
            let h = Hash256(bytes: bytes)!
            #expect(h.bytes == bytes)
            #expect((0 ..< 32).map { h.byte(at: $0) } == bytes)
            #expect(bytes.withUnsafeBytes { Hash256(raw: $0) } == h)
            #expect(h.withUnsafeBytes { Array($0) } == bytes)
            #expect(PackedWords256(h).hash256 == h && PackedWords256(h).bytes == bytes)
        }
        #expect(Hash256(bytes: [1, 2, 3]) == nil)
        #expect([UInt8](repeating: 0, count: 31).withUnsafeBytes { Hash256(raw: $0) } == nil)
        #expect(Hash256.zero.bytes == [UInt8](repeating: 0, count: 32))
    }

    @Test func theOrderIsTheBytesOrder() {
        var g = SplitMix64(seed: 10)
        var all = (0 ..< 300).map { _ in Self.random(&g) }
        // Pairs that differ only late, so every word takes part in the comparison.
        for i in stride(from: 0, to: 32, by: 5) {
            var a = all[0]
            a[i] ^= 0x80
            all.append(a)
        }
        let byWords = all.map { Hash256(bytes: $0)! }.sorted().map(\.bytes)
        let byBytes = all.sorted { $0.lexicographicallyPrecedes($1) }
        #expect(byWords == byBytes)
    }

    @Test func incrementalHashingMatchesOneShot() {
        let h = Hash256.of(Array("abc".utf8))
        var inc = Hasher256()
        inc.update(Array("ab".utf8))
        inc.update(UInt8(ascii: "c"))
        #expect(inc.finalize() == h)
        var withHash = Hasher256()
        withHash.update(h)
        #expect(withHash.finalize() == Hash256.of(h.bytes))
        // BLAKE2b-256 of the empty string, a published value.
        #expect(Hash256.of([]).hex == "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8")
    }
}
