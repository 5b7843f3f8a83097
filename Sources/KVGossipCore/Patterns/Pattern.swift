/// A path glob naming a set of keys, as used in grants (Docs/contract.md §Patterns).
///
/// Segments are literals (`db`), globs within one segment (`*` is any run of characters, possibly
/// empty; `?` is exactly one character), or exactly `**`. A `**` in the middle stands for zero or more
/// whole segments; as the last segment it stands for one or more, so `/a/**` is everything strictly
/// below `/a` and `/**` is every key.
///
/// Equality and hashing are on the text: two spellings of the same set (`/**/**` and `/**`) are
/// different patterns; use `isIncluded(in:)` both ways to compare the sets.
public struct Pattern: Hashable, Sendable, CustomStringConvertible {
    /// Longest allowed pattern, in bytes (the same limit as a key).
    public static let maxBytes = Key.maxBytes

    /// The validated text, e.g. `"/app/*/url"`.
    public let text: String

    /// The parsed form, derived from `text`.
    let segments: [PatternSegment]

    /// Validates and parses `text`.
    ///
    /// Besides the shape rules shared with keys, a literal or glob segment may not start with `.`:
    /// no key segment does, so such a pattern could never match anything and is surely a mistake.
    ///
    /// - Throws: `InvalidPattern` naming the first rule the text breaks.
    public init(_ text: String) throws(InvalidPattern) {
        do throws(PathSyntax.Problem) {
            self.segments = try PatternSegment.parse(text)
        } catch {
            throw InvalidPattern(input: text, reason: error.reason)
        }
        self.text = text
    }

    /// True when the pattern has no `*`, `?` or `**`: it names exactly one key, its own text.
    public var isLiteral: Bool {
        segments.allSatisfy(\.isLiteral)
    }

    /// The leading literal segments, up to the first segment with a wildcard: `"/app/db"` for
    /// `/app/db/*`, the whole text for a literal pattern, and `""` when the first segment already has a
    /// wildcard. Every key the pattern matches starts with this text (followed by `/` unless the
    /// pattern is literal), so store scans can be narrowed to it.
    public var literalPrefix: String {
        let literalCount = segments.prefix(while: \.isLiteral).count
        guard literalCount > 0 else { return "" }
        guard literalCount < segments.count else { return text }
        return "/" + text.utf8.dropFirst()
            .split(separator: PathSyntax.slash, omittingEmptySubsequences: false)
            .prefix(literalCount)
            .map { String(decoding: $0, as: UTF8.self) }
            .joined(separator: "/")
    }

    public var description: String { text }

    public static func == (lhs: Pattern, rhs: Pattern) -> Bool {
        lhs.text == rhs.text
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(text)
    }
}

/// Why a string is not a pattern.
public struct InvalidPattern: Error, Sendable, CustomStringConvertible {
    /// The rejected text, unchanged.
    public let input: String
    /// A short human explanation, e.g. `'**' must be a whole segment`.
    public let reason: String

    public var description: String { "invalid pattern \"\(input)\": \(reason)" }
}
