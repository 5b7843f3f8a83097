/// The name of one configuration value: an absolute, slash-separated path such as `/app/db/url`
/// (Docs/contract.md §Keys).
///
/// The initialiser is the only way to make a `Key`, so holding one means the text already passed every
/// rule and later code never re-checks it. Keys are ASCII by construction.
public struct Key: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Longest allowed key, in bytes, slashes included.
    public static let maxBytes = 1024
    /// Most segments a key may have.
    public static let maxSegments = 32
    /// Longest allowed segment, in bytes.
    public static let maxSegmentBytes = 255

    /// The validated text, e.g. `"/app/db/url"`.
    public let path: String

    /// Validates `text` and wraps it.
    ///
    /// - Throws: `InvalidKey` naming the first rule the text breaks.
    public init(_ text: String) throws(InvalidKey) {
        // Most keys are plain ASCII within every limit; one pass over the bytes settles those. Every
        // record decoded (a mount's start reads the whole store) passes here.
        if !PathSyntax.isPlainKey(text), let reason = PathSyntax.keyProblem(text) {
            throw InvalidKey(input: text, reason: reason)
        }
        self.init(validatedPath: text)
    }

    /// For text already known to follow every key rule (a parent of a key, a literal pattern).
    init(validatedPath: String) {
        var path = validatedPath
        // The matcher reads the bytes in place; a bridged or lazily built string would copy each time.
        path.makeContiguousUTF8()
        self.path = path
    }

    /// The segments between the slashes: `["app", "db", "url"]` for `/app/db/url`.
    public var segments: [Substring] {
        path.split(separator: "/")
    }

    /// The key one level up, or nil for a one-segment key (`/` itself is not a key).
    public var parent: Key? {
        let lastSlash = path.utf8.lastIndex(of: PathSyntax.slash)!
        guard lastSlash != path.startIndex else { return nil }
        return Key(validatedPath: String(path[..<lastSlash]))
    }

    /// The last segment: `"url"` for `/app/db/url`.
    public var name: Substring {
        let lastSlash = path.utf8.lastIndex(of: PathSyntax.slash)!
        return path[path.index(after: lastSlash)...]
    }

    /// True when `segment` could appear between two slashes of a key.
    public static func isValidSegment(_ segment: Substring) -> Bool {
        PathSyntax.keySegmentProblem(segment) == nil
    }

    /// Bytewise order of the UTF-8 text, so every node sorts keys identically whatever its locale.
    public static func < (lhs: Key, rhs: Key) -> Bool {
        lhs.path.utf8.lexicographicallyPrecedes(rhs.path.utf8)
    }

    public var description: String { path }
}

/// Why a string is not a key.
public struct InvalidKey: Error, Sendable, CustomStringConvertible {
    /// The rejected text, unchanged.
    public let input: String
    /// A short human explanation, e.g. `empty segment`.
    public let reason: String

    public var description: String { "invalid key \"\(input)\": \(reason)" }
}

/// The path rules that keys and patterns share, kept in one place so the two cannot drift apart.
enum PathSyntax {
    struct Problem: Error {
        let reason: String
    }

    enum Kind {
        case key, pattern
    }

    static let slash = UInt8(ascii: "/")
    static let dot = UInt8(ascii: ".")

    /// Lookup table for `[A-Za-z0-9._@+=,:-]`: the inclusion search asks for every byte at every step.
    private static let keyByteTable: [Bool] = {
        var table = [Bool](repeating: false, count: 256)
        for byte in UInt8(ascii: "a")...UInt8(ascii: "z") { table[Int(byte)] = true }
        for byte in UInt8(ascii: "A")...UInt8(ascii: "Z") { table[Int(byte)] = true }
        for byte in UInt8(ascii: "0")...UInt8(ascii: "9") { table[Int(byte)] = true }
        for byte in "._@+=,:-".utf8 { table[Int(byte)] = true }
        return table
    }()

    /// True for the bytes a key segment may contain.
    static func isKeyByte(_ byte: UInt8) -> Bool {
        keyByteTable[Int(byte)]
    }

    /// True when `text` is a key by a single pass over its bytes: a leading slash, no trailing one,
    /// within the length and segment limits, and every segment non-empty, not starting with '.',
    /// made only of key bytes. It never says yes to text the full check refuses (`KeyTests` holds
    /// the two together); a no only sends the text to the full check, which also names the reason.
    static func isPlainKey(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { bytes in
            guard bytes.count > 1, bytes.count <= Key.maxBytes, bytes[0] == slash, bytes[bytes.count - 1] != slash else {
                return false
            }
            var segments = 0
            var start = 1
            for i in 1...bytes.count {
                if i == bytes.count || bytes[i] == slash {
                    let length = i - start
                    guard length > 0, length <= Key.maxSegmentBytes, bytes[start] != dot else { return false }
                    segments += 1
                    guard segments <= Key.maxSegments else { return false }
                    start = i + 1
                } else if !isKeyByte(bytes[i]) {
                    return false
                }
            }
            return true
        }
    }

    /// The full check of a key, rule by rule: the first rule `text` breaks, or nil for a key.
    static func keyProblem(_ text: String) -> String? {
        do throws(Problem) {
            for segment in try segments(of: text, kind: .key) {
                if let reason = keySegmentProblem(segment) { return reason }
            }
            return nil
        } catch {
            return error.reason
        }
    }

    /// Checks the outline shared by keys and patterns — leading slash, total length, no trailing
    /// slash, segment count — and returns the segments. The content of each segment is the caller's.
    static func segments(of text: String, kind: Kind) throws(Problem) -> [Substring] {
        guard !text.isEmpty else { throw Problem(reason: "empty") }
        guard text.utf8.first == slash else { throw Problem(reason: "must start with /") }
        guard text.utf8.count > 1 else {
            throw Problem(reason: kind == .key ? "'/' alone is not a key" : "no segments ('/**' means every key)")
        }
        guard text.utf8.count <= Key.maxBytes else {
            throw Problem(reason: "longer than \(Key.maxBytes) bytes")
        }
        guard text.utf8.last != slash else { throw Problem(reason: "trailing slash") }
        // Split on scalars, not Characters: a combining mark after '/' would otherwise hide the slash.
        let segments = text.unicodeScalars.dropFirst()
            .split(separator: "/", omittingEmptySubsequences: false)
            .map(Substring.init)
        for segment in segments {
            if segment.isEmpty { throw Problem(reason: "empty segment") }
            if segment.utf8.count > Key.maxSegmentBytes {
                throw Problem(reason: "segment longer than \(Key.maxSegmentBytes) bytes")
            }
        }
        guard segments.count <= Key.maxSegments else {
            throw Problem(reason: "more than \(Key.maxSegments) segments")
        }
        return segments
    }

    /// Why `segment` cannot be a key segment, or nil when it can.
    static func keySegmentProblem(_ segment: Substring) -> String? {
        if let reason = lengthProblem(segment) ?? dotProblem(segment) { return reason }
        // Names ending in '~' are editor backups, local scratch in the mount
        // (Docs/filesystem.md §Scratch names). '~' is not a key character anyway; saying why is kinder than
        // naming the character.
        if segment.utf8.last == UInt8(ascii: "~") {
            return "segment \(String(segment).debugDescription) ends with '~'"
        }
        return characterProblem(segment, alsoAllowed: [])
    }

    static func lengthProblem(_ segment: Substring) -> String? {
        if segment.isEmpty { return "empty segment" }
        if segment.utf8.count > Key.maxSegmentBytes {
            return "segment longer than \(Key.maxSegmentBytes) bytes"
        }
        return nil
    }

    /// Segments starting with '.' are local scratch in the mount (Docs/filesystem.md §Scratch names), which
    /// also rules out `.` and `..`; those two get their own message because they look like path
    /// navigation.
    static func dotProblem(_ segment: Substring) -> String? {
        if segment == "." || segment == ".." {
            return "segment \(String(segment).debugDescription) is not allowed"
        }
        if segment.utf8.first == dot {
            return "segment \(String(segment).debugDescription) starts with '.'"
        }
        return nil
    }

    /// Names the first character outside the key set (plus `alsoAllowed`), or nil.
    static func characterProblem(_ segment: Substring, alsoAllowed: Set<UInt8>) -> String? {
        for scalar in segment.unicodeScalars {
            if scalar.isASCII {
                let byte = UInt8(scalar.value)
                if isKeyByte(byte) || alsoAllowed.contains(byte) { continue }
            }
            return "character '\(shown(scalar))' is not allowed"
        }
        return nil
    }

    /// Printable characters as themselves (even `'` and `\`, which Swift's escaping would double),
    /// control characters as escapes so the message stays on one line.
    private static func shown(_ scalar: Unicode.Scalar) -> String {
        let isControl = scalar.value < 0x20 || (0x7F..<0xA0).contains(scalar.value)
        return isControl ? scalar.escaped(asASCII: true) : String(scalar)
    }
}
