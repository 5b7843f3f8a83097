// Exact inclusion between patterns, decided on automata (Docs/contract.md §Patterns).
//
// P ⊆ Q1 ∪ … ∪ Qn fails exactly when some valid key is accepted by P and by no Q. The search walks the
// product of three automata breadth-first: P's NFA (one state at a time — any accepting run will do),
// the subset construction of the Qs' union (built lazily), and `ValidKeyAutomaton`. A product state
// where P accepts, the key is valid and no Q accepts spells a counterexample; breadth-first order makes
// it a shortest one. Every component is finite, so the search ends without any bound on key length.
//
// The alphabet is cut down to one representative per class of bytes that every automaton involved
// treats alike: '/', '.', each byte written literally in some pattern, and one byte standing for all
// other key characters. Any counterexample over the full alphabet maps, byte by byte, to one over the
// reduced alphabet with the same verdict from every automaton, so the answer stays exact.

extension Pattern {
    /// True iff every valid key matched by `self` is matched by at least one pattern of `union`
    /// (false for an empty union).
    ///
    /// The languages compared are the keys of Docs/contract.md §Keys without their length limits (1024 bytes,
    /// 255 per segment, 32 segments). Dropping the limits only adds keys, so the answer can only turn from
    /// "included" to "not included", and only in corner cases such as `/a/**` against the 31 patterns `/a/*`,
    /// `/a/*/*`, …: that errs on the safe side, refusing a grant rather than over-granting.
    ///
    /// The work can grow exponentially with crafted patterns; see `isIncluded(in:maxStates:)`.
    public func isIncluded(in union: [Pattern]) -> Bool {
        counterexample(notIn: union) == nil
    }

    /// A shortest valid key matched by `self` but by none of `union`, or nil when `self` is included.
    ///
    /// Among the shortest it is the first in bytewise order over the bytes the search uses. It is a
    /// `String`, not a `Key`, because in the corner cases described at `isIncluded(in:)` it may
    /// exceed the key length limits.
    public func counterexample(notIn union: [Pattern]) -> String? {
        switch search(notIn: union, maxStates: .max) {
        case .included, .gaveUp: nil
        case .escapes(let key): key
        }
    }

    /// `isIncluded(in:)` with a cap on the work: nil when the answer needs more than `maxStates`
    /// search states.
    ///
    /// Exact inclusion can take time exponential in the patterns: `/*a???…?` with n `?` makes the
    /// search track which of the last n characters were `a`, about 2ⁿ states (n = 14 already takes
    /// ~0.1 s). Patterns that arrive over the network should be checked with a cap, and nil treated
    /// as "not included". Everyday patterns need tens to a few thousand states, and a state costs
    /// about a microsecond in a release build, so a cap of 100_000 keeps a check near 0.1 s.
    public func isIncluded(in union: [Pattern], maxStates: Int) -> Bool? {
        switch search(notIn: union, maxStates: maxStates) {
        case .included: true
        case .escapes: false
        case .gaveUp: nil
        }
    }

    private func search(notIn union: [Pattern], maxStates: Int) -> InclusionSearch.Outcome {
        if union.contains(self) || union.contains(where: \.matchesEveryKey) { return .included }
        if isLiteral {
            // A literal pattern is itself a valid key, and the only one it names.
            let key = Key(validatedPath: text)
            return union.contains { $0.matches(key) } ? .included : .escapes(text)
        }
        var search = InclusionSearch(candidate: self, union: union)
        return search.run(maxStates: maxStates)
    }

    /// `/**`, `/**/**`, …: one or more segments of anything.
    var matchesEveryKey: Bool {
        segments.allSatisfy { segment in
            if case .anyDepth = segment { return true }
            return false
        }
    }
}

/// The breadth-first search over P × subset(∪Q) × valid-key described at the top of this file.
struct InclusionSearch {
    private let candidate: PatternAutomaton
    private var cover: SubsetAutomaton
    private let alphabet: [UInt8]

    init(candidate: Pattern, union: [Pattern]) {
        alphabet = Self.alphabet(for: [candidate] + union)
        self.candidate = PatternAutomaton(candidate)
        cover = SubsetAutomaton(PatternAutomaton(union: union), alphabet: alphabet)
    }

    private struct Node: Hashable {
        let candidateState: Int
        let coverState: Int
        let keyState: ValidKeyAutomaton.State
    }

    enum Outcome {
        case included
        /// A shortest valid key matched by the candidate and by no pattern of the union.
        case escapes(String)
        /// More than the allowed number of states would have to be explored.
        case gaveUp
    }

    mutating func run(maxStates: Int) -> Outcome {
        var nodes: [Node] = []
        var parents: [Int] = []
        var lastBytes: [UInt8] = []
        var seen: [Node: Int] = [:]

        func enqueue(_ node: Node, parent: Int, byte: UInt8) {
            guard seen[node] == nil else { return }
            seen[node] = nodes.count
            nodes.append(node)
            parents.append(parent)
            lastBytes.append(byte)
        }

        for start in candidate.starts {
            enqueue(Node(candidateState: start, coverState: cover.start, keyState: .start),
                    parent: -1, byte: 0)
        }
        var head = 0
        while head < nodes.count {
            let node = nodes[head]
            if candidate.accepting[node.candidateState], node.keyState == .inSegment,
               !cover.isAccepting(node.coverState) {
                return .escapes(Self.spell(head, parents: parents, lastBytes: lastBytes))
            }
            if nodes.count > maxStates { return .gaveUp }
            for (symbolIndex, symbol) in alphabet.enumerated() {
                guard let keyState = ValidKeyAutomaton.step(node.keyState, symbol) else { continue }
                // Only worth stepping the cover when the candidate can move too.
                var coverState: Int?
                for edge in candidate.edges[node.candidateState] where edge.label.accepts(symbol) {
                    let next = coverState ?? cover.step(node.coverState, symbolIndex: symbolIndex)
                    coverState = next
                    enqueue(Node(candidateState: edge.target, coverState: next, keyState: keyState),
                            parent: head, byte: symbol)
                }
            }
            head += 1
        }
        return .included
    }

    private static func spell(_ index: Int, parents: [Int], lastBytes: [UInt8]) -> String {
        var bytes: [UInt8] = []
        var current = index
        while parents[current] >= 0 {
            bytes.append(lastBytes[current])
            current = parents[current]
        }
        return String(decoding: bytes.reversed(), as: UTF8.self)
    }

    /// Letters first, so counterexamples read naturally when a stand-in is needed.
    private static let standInPreference = Array(
        "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_@+=,:-".utf8)

    /// '/', '.', every byte some pattern spells out, and one stand-in for all other key bytes (when
    /// any remain), in bytewise order so the search, and hence its answer, is deterministic.
    static func alphabet(for patterns: [Pattern]) -> [UInt8] {
        var bytes: Set<UInt8> = [PathSyntax.slash, PathSyntax.dot]
        for pattern in patterns {
            for segment in pattern.segments {
                switch segment {
                case .literal(let literal):
                    bytes.formUnion(literal)
                case .glob(let tokens):
                    for case .byte(let byte) in tokens { bytes.insert(byte) }
                case .anyDepth:
                    break
                }
            }
        }
        if let standIn = standInPreference.first(where: { !bytes.contains($0) }) {
            bytes.insert(standIn)
        }
        return bytes.sorted()
    }
}

/// Recognises valid keys, length limits aside: `/` then a non-empty segment of key bytes not starting
/// with '.', one or more times.
enum ValidKeyAutomaton {
    enum State: Hashable {
        case start, segmentStart, inSegment
    }

    /// The next state, or nil once the text can no longer become a valid key.
    static func step(_ state: State, _ symbol: UInt8) -> State? {
        if symbol == PathSyntax.slash {
            return state == .segmentStart ? nil : .segmentStart
        }
        guard PathSyntax.isKeyByte(symbol) else { return nil }
        switch state {
        case .start: return nil
        case .segmentStart: return symbol == PathSyntax.dot ? nil : .inSegment
        case .inSegment: return .inSegment
        }
    }
}

/// The subset construction of an NFA, built only as far as the search asks for it.
struct SubsetAutomaton {
    private let nfa: PatternAutomaton
    private let alphabet: [UInt8]
    private var sets: [StateSet] = []
    private var ids: [StateSet: Int] = [:]
    private var accepting: [Bool] = []
    /// `transitions[state][symbolIndex]`, -1 until first needed.
    private var transitions: [[Int]] = []

    let start = 0

    init(_ nfa: PatternAutomaton, alphabet: [UInt8]) {
        self.nfa = nfa
        self.alphabet = alphabet
        _ = intern(nfa.startSet)
    }

    func isAccepting(_ state: Int) -> Bool {
        accepting[state]
    }

    mutating func step(_ state: Int, symbolIndex: Int) -> Int {
        let known = transitions[state][symbolIndex]
        if known >= 0 { return known }
        let next = intern(nfa.step(sets[state], on: alphabet[symbolIndex]))
        transitions[state][symbolIndex] = next
        return next
    }

    private mutating func intern(_ set: StateSet) -> Int {
        if let id = ids[set] { return id }
        let id = sets.count
        ids[set] = id
        sets.append(set)
        accepting.append(nfa.isAccepting(set))
        transitions.append([Int](repeating: -1, count: alphabet.count))
        return id
    }
}
