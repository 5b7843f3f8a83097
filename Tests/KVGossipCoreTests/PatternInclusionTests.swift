import Testing
@testable import KVGossipCore
import KVGossipTestSupport

private typealias SmallWorld = PatternFixtures.SmallWorld

private func pattern(_ text: String) -> Pattern {
    try! Pattern(text)
}

/// Checks that `text` is a valid key matched by `candidate` and by none of `union`.
private func expectCounterexample(
    _ text: String?, for candidate: Pattern, notIn union: [Pattern],
    sourceLocation: SourceLocation = #_sourceLocation
) {
    guard let text else {
        Issue.record("no counterexample for \(candidate)", sourceLocation: sourceLocation)
        return
    }
    guard let key = try? Key(text) else {
        Issue.record("counterexample \(text) is not a key", sourceLocation: sourceLocation)
        return
    }
    #expect(candidate.matches(key), "\(candidate) should match \(text)", sourceLocation: sourceLocation)
    for other in union {
        #expect(!other.matches(key), "\(other) should not match \(text)", sourceLocation: sourceLocation)
    }
}

struct PatternInclusionTests {
    /// One inclusion question and its expected answer, readable in test output.
    struct InclusionCase: Sendable, CustomTestStringConvertible {
        let candidate: String
        let union: [String]
        let included: Bool

        init(_ candidate: String, in union: [String], _ included: Bool) {
            self.candidate = candidate
            self.union = union
            self.included = included
        }

        var testDescription: String {
            let right = union.isEmpty ? "∅" : union.joined(separator: " ∪ ")
            return "\(candidate) \(included ? "⊆" : "⊄") \(right)"
        }
    }

    static let specExamples: [InclusionCase] = [
        InclusionCase("/a/b/*", in: ["/a/**"], true),
        InclusionCase("/a/**", in: ["/a/*"], false),
        InclusionCase("/a/x*", in: ["/a/*"], true),
        InclusionCase("/a/*/c", in: ["/a/b/c", "/a/*"], false),
        InclusionCase("/a/*/c", in: ["/a/**"], true),
        InclusionCase("/**", in: ["/*", "/*/**"], true),
        InclusionCase("/**", in: ["/a/**"], false),
        InclusionCase("/a/*", in: ["/a/?*"], true),
        InclusionCase("/a/?*", in: ["/a/*"], true),
        InclusionCase("/a/b", in: ["/a/b"], true),
        InclusionCase("/a/**/b", in: ["/a/**"], true),
        InclusionCase("/a/**", in: ["/a/**/b"], false),
        InclusionCase("/a/b", in: [], false),
        InclusionCase("/**", in: [], false),
    ]

    static let moreExamples: [InclusionCase] = [
        InclusionCase("/a/b", in: ["/a/c"], false),
        InclusionCase("/a/b", in: ["/a/?"], true),
        InclusionCase("/a/b", in: ["/*/*"], true),
        InclusionCase("/a/b", in: ["/**/b"], true),
        InclusionCase("/a/**/b", in: ["/**/b"], true),
        InclusionCase("/**/b", in: ["/a/**/b"], false),
        InclusionCase("/*/*", in: ["/**"], true),
        InclusionCase("/**", in: ["/**/**"], true),
        InclusionCase("/**/**", in: ["/**"], true),
        InclusionCase("/a/**/**", in: ["/a/**"], true),
        InclusionCase("/a/**", in: ["/a/**/**"], true),
        InclusionCase("/a/**", in: ["/a/*", "/a/*/**"], true),
        InclusionCase("/a/**", in: ["/a/*", "/a/*/*"], false),
        InclusionCase("/a*", in: ["/*"], true),
        InclusionCase("/*", in: ["/a*"], false),
        InclusionCase("/??", in: ["/?*"], true),
        InclusionCase("/?*", in: ["/??"], false),
        InclusionCase("/?*", in: ["/?", "/??*"], true),
        InclusionCase("/a*b", in: ["/a*", "/*b"], true),
        InclusionCase("/a*", in: ["/a*b", "/a*c"], false),
        InclusionCase("/*a*a*", in: ["/*a*"], true),
        InclusionCase("/*a*", in: ["/*a*a*"], false),
        InclusionCase("/x/**/y", in: ["/x/y", "/x/*/y", "/x/*/*/**"], true),
        InclusionCase("/x/**/y", in: ["/x/y", "/x/*/y"], false),
        InclusionCase("/**/a/**", in: ["/**/a/*", "/**/a/*/**"], true),
        InclusionCase("/a.*", in: ["/a*"], true),
        InclusionCase("/a?", in: ["/a.", "/a?"], true),
    ]

    @Test(arguments: specExamples)
    func specExample(_ example: InclusionCase) {
        let candidate = pattern(example.candidate)
        let union = example.union.map(pattern)
        #expect(candidate.isIncluded(in: union) == example.included)
        if example.included {
            #expect(candidate.counterexample(notIn: union) == nil)
        } else {
            expectCounterexample(candidate.counterexample(notIn: union), for: candidate, notIn: union)
        }
    }

    @Test(arguments: moreExamples)
    func moreExample(_ example: InclusionCase) {
        let candidate = pattern(example.candidate)
        let union = example.union.map(pattern)
        #expect(candidate.isIncluded(in: union) == example.included)
        if !example.included {
            expectCounterexample(candidate.counterexample(notIn: union), for: candidate, notIn: union)
        }
    }

    @Test func everythingIsInsideEverything() {
        var random = SeededRandom(seed: 1)
        for _ in 0..<300 {
            let candidate = SmallWorld.pattern(using: &random)
            #expect(candidate.isIncluded(in: [pattern("/**")]), "\(candidate)")
            #expect(candidate.isIncluded(in: [candidate]), "\(candidate)")
            #expect(!candidate.isIncluded(in: []), "\(candidate)")
        }
    }

    @Test func counterexamplesAreShortest() {
        #expect(pattern("/a/**").counterexample(notIn: [pattern("/a/*")]) == "/a/a/a")
        #expect(pattern("/a/*").counterexample(notIn: []) == "/a/a")
        #expect(pattern("/**").counterexample(notIn: [pattern("/a/**")]) == "/a")
        #expect(pattern("/a/*/c").counterexample(notIn: [pattern("/a/b/c"), pattern("/a/*")]) == "/a/a/c")
        #expect(pattern("/a/**").counterexample(notIn: [pattern("/a/**/b")]) == "/a/a")
        #expect(pattern("/a/b").counterexample(notIn: [pattern("/a/c")]) == "/a/b")
        #expect(pattern("/?*").counterexample(notIn: [pattern("/??")]) == "/a")
        #expect(pattern("/*").counterexample(notIn: [pattern("/?"), pattern("/??")]) == "/a..")  // '.' sorts before letters
    }

    /// `.` is a key character but cannot start a segment, so a single-character segment is any key
    /// character except `.`: naming all of them covers `?`, and leaving one out uncovers exactly it.
    @Test func segmentsNeverStartWithDot() {
        let keyCharacters = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@+=,:-")
        let all = keyCharacters.map { pattern("/a/\($0)") }
        #expect(pattern("/a/?").isIncluded(in: all))
        #expect(pattern("/a/?").isIncluded(in: all + [pattern("/a/x.")]))

        var allButPlus = all
        allButPlus.removeAll { $0.text == "/a/+" }
        #expect(!pattern("/a/?").isIncluded(in: allButPlus))
        #expect(pattern("/a/?").counterexample(notIn: allButPlus) == "/a/+")

        // The same with `*`: a segment is one non-dot character followed by anything.
        let starred = keyCharacters.map { pattern("/a/\($0)*") }
        #expect(pattern("/a/*").isIncluded(in: starred))
        #expect(pattern("/a/*/b").isIncluded(in: starred.map { pattern($0.text + "/b") }))
    }

    /// Inclusion ignores the 32-segment limit, which can only make it answer "not included" where the
    /// limited answer would be "included": here the 31 patterns together cover every real key below
    /// `/a`, yet the answer is no, with a 33-segment witness that is not a key.
    @Test func ignoringLengthLimitsErrsTowardsNotIncluded() {
        let levels = (1...31).map { depth in
            pattern("/a" + String(repeating: "/*", count: depth))
        }
        let candidate = pattern("/a/**")
        #expect(!candidate.isIncluded(in: levels))
        let witness = candidate.counterexample(notIn: levels)
        #expect(witness.map { $0.split(separator: "/").count } == 33)
        #expect(witness.flatMap { try? Key($0) } == nil)
    }

    /// Inclusion must agree with brute force over every small key: a key matched by P and no Q makes
    /// inclusion false, and every counterexample it gives is genuine and no longer than the shortest
    /// such key.
    @Test func inclusionAgreesWithBruteForce() {
        let keys = SmallWorld.allKeys(maxSegments: 4, maxSegmentLength: 2)
        var random = SeededRandom(seed: 0xC0FFEE)
        var includedCount = 0
        var excludedCount = 0
        for _ in 0..<250 {
            let candidate = SmallWorld.pattern(using: &random)
            var union = (0..<Int.random(in: 1...3, using: &random)).map { _ in
                SmallWorld.pattern(using: &random)
            }
            // Widened copies of the candidate make "included" answers common enough to test.
            if Bool.random(using: &random) {
                union.append(widened(candidate, using: &random))
            }

            let counterexample = candidate.counterexample(notIn: union)
            #expect(candidate.isIncluded(in: union) == (counterexample == nil))

            let bruteWitness = keys.first { key in
                candidate.matches(key) && !union.contains { $0.matches(key) }
            }
            if let bruteWitness {
                #expect(counterexample != nil, "\(candidate) ⊄ \(union), witness \(bruteWitness)")
                if let counterexample {
                    #expect(counterexample.utf8.count <= bruteWitness.path.utf8.count,
                            "\(counterexample) is longer than \(bruteWitness)")
                }
            }
            if counterexample != nil {
                expectCounterexample(counterexample, for: candidate, notIn: union)
                excludedCount += 1
            } else {
                includedCount += 1
            }
        }
        #expect(includedCount > 25)
        #expect(excludedCount > 25)
    }

    /// A pattern matching at least what `original` matches: one segment loosened to `*` or `**`, or
    /// one literal character turned into `?`.
    private func widened(_ original: Pattern, using random: inout SeededRandom) -> Pattern {
        var parts = original.text.split(separator: "/").map(String.init)
        let index = Int.random(in: 0..<parts.count, using: &random)
        switch Int.random(in: 0..<3, using: &random) {
        case 0 where !parts[index].contains("**"):
            parts[index] = "*"
        case 1 where !parts[index].contains("**") && parts[index].contains(where: \.isLetter):
            let letter = parts[index].firstIndex(where: \.isLetter)!
            parts[index].replaceSubrange(letter...letter, with: "?")
        default:
            // `**` in the middle matches zero or more segments, so it can replace any single one
            // there; at the end it matches one or more, so it can too.
            parts[index] = "**"
        }
        return (try? Pattern("/" + parts.joined(separator: "/"))) ?? pattern("/**")
    }

    @Test func cappedInclusionAgreesWhenWithinTheCap() {
        for example in Self.specExamples + Self.moreExamples {
            let candidate = pattern(example.candidate)
            let union = example.union.map(pattern)
            #expect(candidate.isIncluded(in: union, maxStates: 10_000) == example.included,
                    "\(example.testDescription)")
        }
    }

    /// `/*a` then n `?` against `/*a` then n-1 `?` and `*`: the cover has to remember which of the
    /// last n characters were `a`, so the search grows like 2ⁿ and the cap has to stop it.
    @Test func capStopsExponentialSearches() {
        let questions = String(repeating: "?", count: 10)
        let candidate = pattern("/*a" + questions)
        let union = [pattern("/*a" + questions.dropLast() + "*")]
        #expect(candidate.isIncluded(in: union, maxStates: 1_000) == nil)
        #expect(candidate.isIncluded(in: union, maxStates: 100_000) == true)
        #expect(candidate.isIncluded(in: union))
        // Escaping keys are still found quickly when they are short.
        #expect(pattern("/*").isIncluded(in: union, maxStates: 1_000) == false)
    }

    @Test func largerPatternsStayQuick() {
        let candidate = pattern("/**/a*b?c*/d/**/e*")
        // The last pattern alone covers the candidate; without it `/abac/d/ee` escapes.
        let union = [
            pattern("/x/**"), pattern("/**/*b*/d/**/e"), pattern("/*/*/*/*/*/*/**"),
            pattern("/**/a?*c*/*/**/e*"),
        ]
        #expect(candidate.isIncluded(in: union))
        #expect(!candidate.isIncluded(in: Array(union.dropLast())))
        expectCounterexample(candidate.counterexample(notIn: Array(union.dropLast())),
                             for: candidate, notIn: Array(union.dropLast()))
    }
}
