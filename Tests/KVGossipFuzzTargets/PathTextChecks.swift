import KVGossipCore

/// Keys and patterns arrive as text in grants, control requests and the mount; the two parsers must
/// agree with each other (Docs/contract.md §Keys, §Patterns).
enum PathTextChecks {
    /// A key, a prefix or a pattern as a client sends it.
    static func checkText(_ text: String) throws(Violation) {
        if let key = try? Key(text) {
            try require(key.path == text, "key \(text) is stored as \(key.path)")
            // Every key is also a literal pattern naming exactly that key.
            guard let pattern = try? Pattern(text) else { throw Violation(text: "key \(text) is not a valid pattern") }
            try require(pattern.isLiteral && pattern.matches(key), "key \(text) is not matched by its own literal pattern")
            if let parent = key.parent {
                try require(text.hasPrefix(parent.path + "/") && (try? Key(parent.path)) != nil, "parent \(parent.path) of \(text) is not a key above it")
            }
        }
        if let pattern = try? Pattern(text) { try checkPattern(pattern) }
    }

    static func checkPattern(_ pattern: Pattern) throws(Violation) {
        let text = pattern.text
        try require((try? Pattern(text)) == pattern, "pattern \(text) does not parse again")
        let prefix = pattern.literalPrefix
        try require(text.hasPrefix(prefix), "literal prefix \(prefix) does not start pattern \(text)")
        if pattern.isLiteral {
            // A literal pattern names one key, its own text (the inclusion check relies on it).
            guard let key = try? Key(text) else { throw Violation(text: "literal pattern \(text) is not a key") }
            try require(pattern.matches(key) && prefix == text, "literal pattern \(text) does not match its own key")
        }
    }
}
