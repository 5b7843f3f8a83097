// Matching one key against one pattern. This runs for every link of every authority check, so it reads
// the key's bytes in place and allocates nothing.
//
// Both levels (segments against `**`, bytes against `*`) use the classic greedy wildcard walk: advance
// while things match, and on a mismatch let the most recent wildcard swallow one more unit and retry.
// Remembering only the latest wildcard is enough because every other unit consumes exactly one unit
// of input, so placing the text between two wildcards as early as possible is never worse.

extension Pattern {
    /// True when `key` is one of the keys this pattern names.
    public func matches(_ key: Key) -> Bool {
        if let result = key.path.utf8.withContiguousStorageIfAvailable({ matches(path: $0) }) {
            return result
        }
        return Array(key.path.utf8).withUnsafeBufferPointer { matches(path: $0) }
    }

    /// `path` is the UTF-8 of a valid key: it starts with '/', and no segment is empty.
    func matches(path: UnsafeBufferPointer<UInt8>) -> Bool {
        let end = path.count
        let last = segments.count - 1
        var patternIndex = 0
        // Offset of the '/' that opens the first key segment not yet matched; `end` once all are.
        var at = 0
        // The latest middle `**` seen, and where the key segments it has swallowed so far end.
        var deepIndex = -1
        var deepAt = 0

        while at < end {
            if patternIndex <= last {
                switch segments[patternIndex] {
                case .anyDepth where patternIndex == last:
                    return true  // a trailing `**` takes the one or more segments that remain
                case .anyDepth:
                    deepIndex = patternIndex
                    deepAt = at
                    patternIndex += 1
                    continue
                case .literal(let bytes):
                    let segmentEnd = Self.nextSlash(in: path, after: at)
                    if Self.equal(bytes, path, from: at + 1, to: segmentEnd) {
                        patternIndex += 1
                        at = segmentEnd
                        continue
                    }
                case .glob(let tokens):
                    let segmentEnd = Self.nextSlash(in: path, after: at)
                    if Self.globMatches(tokens, path, from: at + 1, to: segmentEnd) {
                        patternIndex += 1
                        at = segmentEnd
                        continue
                    }
                }
            }
            guard deepIndex >= 0 else { return false }
            deepAt = Self.nextSlash(in: path, after: deepAt)
            at = deepAt
            patternIndex = deepIndex + 1
        }
        // The key is used up: only middle `**` (zero segments) may remain. A trailing `**` needs one.
        while patternIndex < last, case .anyDepth = segments[patternIndex] {
            patternIndex += 1
        }
        return patternIndex == segments.count
    }

    private static func nextSlash(in path: UnsafeBufferPointer<UInt8>, after start: Int) -> Int {
        var index = start + 1
        while index < path.count, path[index] != PathSyntax.slash {
            index += 1
        }
        return index
    }

    private static func equal(
        _ bytes: [UInt8], _ path: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int
    ) -> Bool {
        guard bytes.count == end - start else { return false }
        var offset = start
        for byte in bytes {
            if path[offset] != byte { return false }
            offset += 1
        }
        return true
    }

    /// `*` and `?` against the bytes of one key segment.
    private static func globMatches(
        _ tokens: [GlobToken], _ path: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int
    ) -> Bool {
        var tokenIndex = 0
        var at = start
        var starIndex = -1
        var starAt = 0
        while at < end {
            if tokenIndex < tokens.count {
                switch tokens[tokenIndex] {
                case .anyRun:
                    starIndex = tokenIndex
                    starAt = at
                    tokenIndex += 1
                    continue
                case .anyOne:
                    tokenIndex += 1
                    at += 1
                    continue
                case .byte(let byte) where byte == path[at]:
                    tokenIndex += 1
                    at += 1
                    continue
                case .byte:
                    break
                }
            }
            guard starIndex >= 0 else { return false }
            starAt += 1
            at = starAt
            tokenIndex = starIndex + 1
        }
        while tokenIndex < tokens.count, tokens[tokenIndex] == .anyRun {
            tokenIndex += 1
        }
        return tokenIndex == tokens.count
    }
}
