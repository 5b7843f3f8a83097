/// One segment of a parsed pattern, in the form both the matcher and the automaton read.
enum PatternSegment: Sendable {
    /// Matches exactly these bytes (a valid key segment).
    case literal([UInt8])
    /// Matches one segment against `*` / `?` / literal bytes.
    case glob([GlobToken])
    /// `**`: zero or more whole segments in the middle, one or more at the end.
    case anyDepth

    var isLiteral: Bool {
        if case .literal = self { return true }
        return false
    }

    static let star = UInt8(ascii: "*")
    static let question = UInt8(ascii: "?")

    /// Parses pattern text, checking every rule of Docs/contract.md §Patterns.
    static func parse(_ text: String) throws(PathSyntax.Problem) -> [PatternSegment] {
        let parts = try PathSyntax.segments(of: text, kind: .pattern)
        var segments: [PatternSegment] = []
        segments.reserveCapacity(parts.count)
        for part in parts {
            segments.append(try parseSegment(part))
        }
        return segments
    }

    private static func parseSegment(_ part: Substring) throws(PathSyntax.Problem) -> PatternSegment {
        if part == "**" { return .anyDepth }
        // `***` or `a**` would read as "deep" to a human yet mean something else to the glob rules.
        if part.contains("**") { throw PathSyntax.Problem(reason: "'**' must be a whole segment") }
        if let reason = PathSyntax.dotProblem(part)
            ?? PathSyntax.characterProblem(part, alsoAllowed: [star, question]) {
            throw PathSyntax.Problem(reason: reason)
        }
        let bytes = Array(part.utf8)
        guard bytes.contains(star) || bytes.contains(question) else { return .literal(bytes) }
        return .glob(bytes.map { byte in
            switch byte {
            case star: .anyRun
            case question: .anyOne
            default: .byte(byte)
            }
        })
    }
}

/// One piece of a glob segment.
enum GlobToken: Equatable, Sendable {
    /// This exact byte.
    case byte(UInt8)
    /// `?`: exactly one key character.
    case anyOne
    /// `*`: any run of key characters, possibly empty.
    case anyRun
}
