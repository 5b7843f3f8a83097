/// Decides which names are local scratch (Docs/filesystem.md §Scratch names). Editors and tools write such
/// names next to the file they save; replicating them would spray temporaries over every host of the cluster.
struct ScratchNames: Sendable {
    private let patterns: [[UInt8]]

    init(patterns: [String]) {
        self.patterns = patterns.filter { !$0.isEmpty }.map { Array($0.utf8) }
    }

    /// True when `segment` matches one of the patterns.
    func isScratch<S: StringProtocol>(segment: S) -> Bool {
        matchesAPattern(Array(segment.utf8))
    }

    /// True when the name's bytes match one of the patterns.
    private func matchesAPattern<Name: RandomAccessCollection<UInt8>>(_ name: Name) -> Bool where Name.Index == Int {
        patterns.contains { ScratchNames.glob($0[...], name) }
    }

    /// True when any segment of the slash-separated `path` is scratch: everything below a scratch
    /// directory is scratch too, so `.git/config` never becomes a key. Segments are matched in the
    /// path's own bytes: every record of the store passes here when a mount starts, and splitting
    /// the path into strings and arrays was a sixth of a million-key start.
    func isScratch(path: String) -> Bool {
        var path = path
        return path.withUTF8 { bytes in
            let slash = UInt8(ascii: "/")
            var start = 0
            for i in 0...bytes.count where i == bytes.count || bytes[i] == slash {
                if i > start, matchesAPattern(bytes[start..<i]) { return true }
                start = i + 1
            }
            return false
        }
    }

    /// `*` and `?` over bytes. Backtracks only to the last star, which is linear enough for names of
    /// at most 255 bytes.
    static func glob<Name: RandomAccessCollection<UInt8>>(_ pattern: ArraySlice<UInt8>, _ name: Name) -> Bool where Name.Index == Int {
        let star = UInt8(ascii: "*"), question = UInt8(ascii: "?")
        var p = pattern.startIndex, n = name.startIndex
        var resumeP: Int? = nil, resumeN = 0
        while n < name.endIndex {
            if p < pattern.endIndex, pattern[p] == star {
                resumeP = p + 1
                resumeN = n
                p += 1
            } else if p < pattern.endIndex, pattern[p] == question || pattern[p] == name[n] {
                p += 1
                n += 1
            } else if let r = resumeP {
                p = r
                resumeN += 1
                n = resumeN
            } else {
                return false
            }
        }
        while p < pattern.endIndex, pattern[p] == star { p += 1 }
        return p == pattern.endIndex
    }
}
