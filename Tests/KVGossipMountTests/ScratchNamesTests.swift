import Glibc
import Testing
@testable import KVGossipMount

/// The name rules alone, without a mount.
@Suite struct ScratchNamesTests {
    let names = ScratchNames(patterns: MountOptions.defaultScratchPatterns)

    @Test(arguments: [".f.swp", ".hidden", "f~", "4913", "#f#", "f.swp", "f.swx", "f.swpx", "sedA1b2C3", ".", "~"])
    func scratch(_ name: String) {
        #expect(names.isScratch(segment: name))
    }

    @Test(arguments: ["f", "4914", "sed", "sedA1b2C", "sedA1b2C3D", "f.swpy", "swp", "a.b", "#f", "f#"])
    func notScratch(_ name: String) {
        #expect(!names.isScratch(segment: name))
    }

    @Test func anyScratchSegmentMakesThePathScratch() {
        #expect(names.isScratch(path: "/app/.git/config"))
        #expect(names.isScratch(path: "/app/conf~/x"))
        #expect(!names.isScratch(path: "/app/conf/x"))
        // The first and the last segment, a segment made of a pattern's bytes only in part, and
        // the root: the scan over the path's bytes must cut segments exactly at the slashes.
        #expect(names.isScratch(path: "/.swp"))
        #expect(names.isScratch(path: "/a/b/4913"))
        #expect(!names.isScratch(path: "/a/4913x/4914"))
        #expect(!names.isScratch(path: "/"))
        #expect(!names.isScratch(path: ""))
        // Segments of multi-byte characters are cut at the slash bytes too.
        #expect(names.isScratch(path: "/" + String(repeating: "é", count: 40) + "/x~"))
        #expect(!names.isScratch(path: "/é~é/x"))
    }

    @Test func globMatchesWholeSegments() {
        #expect(ScratchNames.glob(Array("a*b*c".utf8)[...], Array("aXXbYYc".utf8)[...]))
        #expect(!ScratchNames.glob(Array("a*b*c".utf8)[...], Array("aXXbYY".utf8)[...]))
        #expect(ScratchNames.glob(Array("*".utf8)[...], Array("".utf8)[...]))
        #expect(ScratchNames.glob(Array("??".utf8)[...], Array("ab".utf8)[...]))
        #expect(!ScratchNames.glob(Array("??".utf8)[...], Array("abc".utf8)[...]))
        #expect(ScratchNames.glob(Array("*.swp".utf8)[...], Array(".x.swp.swp".utf8)[...]))
    }

    @Test func namesThatAreNeitherScratchNorKeysAreRefused() {
        #expect(throws: FSError(EINVAL)) { try names.classifyFile("/a b") }
        #expect(throws: FSError(ENAMETOOLONG)) { try names.classifyFile("/" + String(repeating: "a", count: 256)) }
        let deep = (0..<32).map { _ in "/d" }.joined()
        #expect(throws: FSError(ENAMETOOLONG)) { try names.classifyDirectory(deep) }
        if case .key(let key) = try? names.classifyFile("/app/x") { #expect(key.path == "/app/x") } else { Issue.record("not a key") }
    }
}
