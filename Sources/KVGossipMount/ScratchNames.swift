/// Decides which names are local scratch (Docs/filesystem.md §Scratch names). Editors and tools write such
/// names next to the file they save; replicating them would spray temporaries over every host of the cluster.
struct ScratchNames: Sendable {
    private let patterns: [[UInt8]]

    init(patterns: [String]) {
        self.patterns = patterns.filter { !$0.isEmpty }.map { Array($0.utf8) }
    }

    /// True when `segment` matches one of the patterns.
    func isScratch<S: StringProtocol>(segment: S) -> Bool {
        let name = Array(segment.utf8)
        return patterns.contains { ScratchNames.glob($0[...], name[...]) }
    }

    /// True when any segment of the slash-separated `path` is scratch: everything below a scratch
    /// directory is scratch too, so `.git/config` never becomes a key.
    func isScratch(path: String) -> Bool {
        path.split(separator: "/").contains { isScratch(segment: $0) }
    }

    /// `*` and `?` over bytes. Backtracks only to the last star, which is linear enough for names of
    /// at most 255 bytes.
    static func glob(_ pattern: ArraySlice<UInt8>, _ name: ArraySlice<UInt8>) -> Bool {
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
