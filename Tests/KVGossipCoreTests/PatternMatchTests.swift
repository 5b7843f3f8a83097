import Testing
@testable import KVGossipCore
import KVGossipTestSupport

/// Test data shared by the pattern test files, in one namespace so it cannot collide with helpers
/// elsewhere in the test target.
enum PatternFixtures {
    /// The conformance vectors of Docs/contract.md §Patterns, written as there: one row per pattern,
    /// `T` = matches, `.` = does not.
    enum ConformanceTable {
        static let keys = ["/a", "/a/b", "/a/bb", "/a/b/c", "/a/x/b", "/a/x/y/b", "/ab/b", "/b"]

        static let rows: [(pattern: String, cells: String)] = [
            //            /a /a/b /a/bb /a/b/c /a/x/b /a/x/y/b /ab/b /b
            ("/**",      "T   T    T     T      T      T        T    T"),
            ("/*",       "T   .    .     .      .      .        .    T"),
            ("/a/**",    ".   T    T     T      T      T        .    ."),
            ("/a/*",     ".   T    T     .      .      .        .    ."),
            ("/a/**/b",  ".   T    .     .      T      T        .    ."),
            ("/a/b*",    ".   T    T     .      .      .        .    ."),
            ("/a/?",     ".   T    .     .      .      .        .    ."),
            ("/**/b",    ".   T    .     .      T      T        T    T"),
            ("/a*/b",    ".   T    .     .      .      .        T    ."),
        ]

        /// Every cell as (pattern, key, expected).
        static var cells: [(pattern: String, key: String, expected: Bool)] {
            rows.flatMap { row in
                let marks = row.cells.split(separator: " ")
                precondition(marks.count == keys.count, "row \(row.pattern) has \(marks.count) cells")
                return zip(keys, marks).map { (row.pattern, $0, $1 == "T") }
            }
        }
    }

    /// Small random keys and patterns over the letters `a`, `b` and `.`, where collisions are likely.
    enum SmallWorld {
        static let keyCharacters: [Character] = ["a", "b", "."]
        static let globCharacters: [Character] = ["a", "b", ".", "*", "?"]

        static func key(using random: inout SeededRandom) -> Key {
            while true {
                let count = Int.random(in: 1...4, using: &random)
                let text = (0..<count).map { _ in
                    "/" + String((0..<Int.random(in: 1...3, using: &random)).map { _ in
                        keyCharacters.randomElement(using: &random)!
                    })
                }.joined()
                if let key = try? Key(text) { return key }
            }
        }

        static func pattern(using random: inout SeededRandom) -> Pattern {
            while true {
                let count = Int.random(in: 1...4, using: &random)
                let text = (0..<count).map { _ -> String in
                    if Int.random(in: 0..<5, using: &random) == 0 { return "/**" }
                    return "/" + String((0..<Int.random(in: 1...3, using: &random)).map { _ in
                        globCharacters.randomElement(using: &random)!
                    })
                }.joined()
                if let pattern = try? Pattern(text) { return pattern }
            }
        }

        /// Every valid key of 1–`maxSegments` segments of 1–`maxSegmentLength` characters from
        /// `keyCharacters`, shortest first.
        static func allKeys(maxSegments: Int, maxSegmentLength: Int) -> [Key] {
            var segments: [String] = [""]
            var allSegments: [String] = []
            for _ in 1...maxSegmentLength {
                segments = segments.flatMap { prefix in keyCharacters.map { prefix + String($0) } }
                allSegments += segments.filter { Key.isValidSegment(Substring($0)) }
            }
            var keys: [String] = []
            var level: [String] = [""]
            for _ in 1...maxSegments {
                level = level.flatMap { prefix in allSegments.map { prefix + "/" + $0 } }
                keys += level
            }
            return keys.map { try! Key($0) }.sorted { $0.path.utf8.count < $1.path.utf8.count }
        }
    }
}

private typealias ConformanceTable = PatternFixtures.ConformanceTable
private typealias SmallWorld = PatternFixtures.SmallWorld

private func pattern(_ text: String) -> Pattern {
    try! Pattern(text)
}

private func key(_ text: String) -> Key {
    try! Key(text)
}

/// The reason `Pattern(text)` gives for rejecting `text`, or nil when it accepts it.
private func rejection(_ text: String) -> String? {
    do {
        _ = try Pattern(text)
        return nil
    } catch {
        return error.reason
    }
}

struct PatternMatchTests {
    @Test(arguments: ConformanceTable.cells)
    func conformanceCell(pattern text: String, key keyText: String, expected: Bool) {
        #expect(pattern(text).matches(key(keyText)) == expected, "\(text) against \(keyText)")
    }

    @Test(arguments: ConformanceTable.cells)
    func conformanceCellOnAutomaton(pattern text: String, key keyText: String, expected: Bool) {
        let automaton = PatternAutomaton(pattern(text))
        #expect(automaton.accepts(keyText.utf8) == expected, "\(text) against \(keyText)")
    }

    @Test(arguments: [
        // (pattern, key, matches)
        ("/a*", "/a", true),
        ("/*a", "/a", true),
        ("/*a*", "/bab", true),
        ("/*a*", "/bbb", false),
        ("/a*b*c", "/abbbc", true),
        ("/a*b*c", "/acb", false),
        ("/a*b*c", "/aXbYc", true),
        ("/??", "/ab", true),
        ("/??", "/a", false),
        ("/??", "/abc", false),
        ("/?*?", "/ab", true),
        ("/?*?", "/a", false),
        ("/*", "/a.b", true),
        ("/*.conf", "/nginx.conf", true),
        ("/*.conf", "/nginx.conf.bak", false),
        ("/a.?", "/a.b", true),
        ("/a/b", "/a/b", true),
        ("/a/b", "/a/b/c", false),
        ("/a/b", "/a", false),
        ("/a/b", "/A/b", false),
        ("/a/**", "/a", false),
        ("/**/**", "/a", true),
        ("/**/**", "/a/b/c", true),
        ("/a/**/**", "/a", false),
        ("/a/**/**", "/a/b", true),
        ("/**/a/**", "/a", false),
        ("/**/a/**", "/a/b", true),
        ("/**/a/**", "/x/y/a/b", true),
        ("/**/a/**", "/x/y/a", false),
        ("/a/**/b/**/c", "/a/b/c", true),
        ("/a/**/b/**/c", "/a/x/b/y/z/c", true),
        ("/a/**/b/**/c", "/a/x/c/b", false),
        ("/**/b", "/b/b/b", true),
        ("/**/b/c", "/b/c/b/c", true),
        ("/**/b/c", "/b/c/b", false),
        ("/a/*/c", "/a/b/c", true),
        ("/a/*/c", "/a/c", false),
        ("/*/*", "/a/b", true),
        ("/*/*", "/a/b/c", false),
    ])
    func moreCases(pattern text: String, key keyText: String, expected: Bool) {
        #expect(pattern(text).matches(key(keyText)) == expected, "\(text) against \(keyText)")
        #expect(PatternAutomaton(pattern(text)).accepts(keyText.utf8) == expected, "automaton")
    }

    @Test(arguments: [
        "/**", "/*", "/a", "/a/b/c", "/a/**/b", "/a/*.conf", "/a/?", "/**/b", "/a*/b", "/a/**/**",
        "/*?*", "/a.", "/a..b", "/_.@+=,:-*",
    ])
    func acceptsValidPatterns(text: String) throws {
        let parsed = try Pattern(text)
        #expect(parsed.text == text)
        #expect(parsed.description == text)
    }

    @Test(arguments: [
        ("", "empty"),
        ("/", "no segments ('/**' means every key)"),
        ("a/*", "must start with /"),
        ("*", "must start with /"),
        ("/a/", "trailing slash"),
        ("/**/", "trailing slash"),
        ("//", "trailing slash"),
        ("//a", "empty segment"),
        ("/a//b", "empty segment"),
        ("/***", "'**' must be a whole segment"),
        ("/a**", "'**' must be a whole segment"),
        ("/**a", "'**' must be a whole segment"),
        ("/a/b**c", "'**' must be a whole segment"),
        ("/[ab]", "character '[' is not allowed"),
        ("/{a,b}", "character '{' is not allowed"),
        ("/a\\*", "character '\\' is not allowed"),
        ("/a b", "character ' ' is not allowed"),
        ("/a~", "character '~' is not allowed"),
        ("/é*", "character 'é' is not allowed"),
        ("/.", "segment \".\" is not allowed"),
        ("/a/..", "segment \"..\" is not allowed"),
        ("/.*", "segment \".*\" starts with '.'"),
        ("/a/.b", "segment \".b\" starts with '.'"),
    ])
    func rejectsWithReason(text: String, reason: String) {
        #expect(rejection(text) == reason)
    }

    @Test func lengthLimits() {
        let longSegment = "/" + String(repeating: "?", count: 255)
        #expect(rejection(longSegment) == nil)
        #expect(rejection(longSegment + "?") == "segment longer than 255 bytes")

        let thirtyTwo = String(repeating: "/**", count: 32)
        #expect(rejection(thirtyTwo) == nil)
        #expect(rejection(thirtyTwo + "/a") == "more than 32 segments")

        let exactly1024 = String(repeating: "/" + String(repeating: "?", count: 200), count: 5) + "/" +
            String(repeating: "a", count: 18)
        #expect(exactly1024.utf8.count == 1024)
        #expect(rejection(exactly1024) == nil)
        #expect(rejection(exactly1024 + "a") == "longer than 1024 bytes")
        #expect(Pattern.maxBytes == 1024)
    }

    @Test func errorDescriptionQuotesInputAndReason() {
        do {
            _ = try Pattern("/a**")
            Issue.record("accepted a**")
        } catch {
            #expect(error.input == "/a**")
            #expect(error.description == "invalid pattern \"/a**\": '**' must be a whole segment")
        }
    }

    @Test(arguments: [
        // (pattern, isLiteral, literalPrefix)
        ("/app/db/url", true, "/app/db/url"),
        ("/a", true, "/a"),
        ("/app/db/*", false, "/app/db"),
        ("/app/**", false, "/app"),
        ("/app/db/**/url", false, "/app/db"),
        ("/a/b*/c", false, "/a"),
        ("/a/?/c", false, "/a"),
        ("/*", false, ""),
        ("/**", false, ""),
        ("/a*/b", false, ""),
        ("/**/b", false, ""),
    ])
    func literalness(text: String, isLiteral: Bool, prefix: String) {
        #expect(pattern(text).isLiteral == isLiteral)
        #expect(pattern(text).literalPrefix == prefix)
    }

    @Test func literalPrefixPrefixesEveryMatch() {
        var random = SeededRandom(seed: 7)
        for _ in 0..<500 {
            let candidate = SmallWorld.pattern(using: &random)
            let prefix = candidate.literalPrefix
            for _ in 0..<20 {
                let key = SmallWorld.key(using: &random)
                guard candidate.matches(key), !prefix.isEmpty else { continue }
                #expect(key.path == prefix || key.path.hasPrefix(prefix + "/"), "\(candidate) \(key)")
            }
        }
    }

    @Test func equalityIsOnText() {
        #expect(pattern("/a/*") == pattern("/a/*"))
        #expect(pattern("/**") != pattern("/**/**"))
        #expect(Set([pattern("/a"), pattern("/a"), pattern("/b")]).count == 2)
    }

    /// The matcher and the automaton are two independent readings of Docs/contract.md §Patterns; on
    /// valid keys they must agree.
    @Test func matcherAgreesWithAutomatonOnRandomInputs() {
        var random = SeededRandom(seed: 0x5EED)
        var matched = 0
        var total = 0
        for _ in 0..<2000 {
            let candidate = SmallWorld.pattern(using: &random)
            let automaton = PatternAutomaton(candidate)
            for _ in 0..<25 {
                let key = SmallWorld.key(using: &random)
                let byMatcher = candidate.matches(key)
                #expect(byMatcher == automaton.accepts(key.path.utf8), "\(candidate) against \(key)")
                total += 1
                if byMatcher { matched += 1 }
            }
        }
        // Guard against a generator that only ever produces misses (or only hits).
        #expect(matched > total / 50)
        #expect(matched < total - total / 50)
    }

    @Test func matcherAgreesWithAutomatonOnEverySmallKey() {
        let keys = SmallWorld.allKeys(maxSegments: 3, maxSegmentLength: 2)
        var random = SeededRandom(seed: 42)
        for _ in 0..<150 {
            let candidate = SmallWorld.pattern(using: &random)
            let automaton = PatternAutomaton(candidate)
            for key in keys {
                #expect(candidate.matches(key) == automaton.accepts(key.path.utf8), "\(candidate) against \(key)")
            }
        }
    }
}
