/// A nondeterministic automaton over the bytes of a path, accepting exactly the strings a pattern (or
/// a union of patterns) denotes.
///
/// It deliberately accepts more than valid keys — `*` may match nothing, `**` may swallow `//` — because
/// inclusion intersects it with `ValidKeyAutomaton` anyway; on valid keys it agrees with
/// `Pattern.matches(_:)`, which a randomized test checks.
///
/// It is built with ε-moves and then flattened: each state carries the edges of every state it reaches
/// by ε-moves, and is accepting if any of them is. Stepping therefore never needs a closure.
struct PatternAutomaton: Sendable {
    enum Label: Hashable, Sendable {
        /// The `/` between segments.
        case separator
        /// One exact key byte (a literal character of the pattern).
        case byte(UInt8)
        /// Any one key byte: `?`, or one turn of `*`.
        case anyKeyByte

        func accepts(_ symbol: UInt8) -> Bool {
            switch self {
            case .separator: symbol == PathSyntax.slash
            case .byte(let byte): symbol == byte
            case .anyKeyByte: PathSyntax.isKeyByte(symbol)
            }
        }
    }

    struct Edge: Hashable, Sendable {
        let label: Label
        let target: Int
    }

    private(set) var edges: [[Edge]]
    private(set) var accepting: [Bool]
    private(set) var starts: [Int]

    var stateCount: Int { edges.count }

    /// The automaton of one pattern.
    init(_ pattern: Pattern) {
        var builder = Builder()
        builder.add(pattern.segments)
        (edges, accepting) = builder.flattened()
        starts = [0]
    }

    /// One automaton accepting what any of `patterns` accepts: the parts side by side, each keeping
    /// its own start state.
    init(union patterns: [Pattern]) {
        edges = []
        accepting = []
        starts = []
        for pattern in patterns {
            let part = PatternAutomaton(pattern)
            let offset = edges.count
            starts.append(offset)
            edges += part.edges.map { $0.map { Edge(label: $0.label, target: $0.target + offset) } }
            accepting += part.accepting
        }
    }

    /// The states reached from `states` by reading `symbol`.
    func step(_ states: StateSet, on symbol: UInt8) -> StateSet {
        var next = StateSet(capacity: stateCount)
        for state in states.members {
            for edge in edges[state] where edge.label.accepts(symbol) {
                next.insert(edge.target)
            }
        }
        return next
    }

    func isAccepting(_ states: StateSet) -> Bool {
        states.members.contains { accepting[$0] }
    }

    var startSet: StateSet {
        var set = StateSet(capacity: stateCount)
        for start in starts { set.insert(start) }
        return set
    }

    /// Whether the automaton accepts these bytes; the reference the matcher is tested against.
    func accepts(_ bytes: some Sequence<UInt8>) -> Bool {
        var states = startSet
        for byte in bytes {
            states = step(states, on: byte)
            if states.isEmpty { return false }
        }
        return isAccepting(states)
    }
}

extension PatternAutomaton {
    /// Thompson-style construction, one segment at a time from a single current state.
    private struct Builder {
        var edges: [[Edge]] = [[]]
        var epsilons: [[Int]] = [[]]
        var finalState = 0

        mutating func newState() -> Int {
            edges.append([])
            epsilons.append([])
            return edges.count - 1
        }

        mutating func connect(_ from: Int, _ label: Label) -> Int {
            let to = newState()
            edges[from].append(Edge(label: label, target: to))
            return to
        }

        mutating func loop(_ state: Int, _ label: Label) {
            edges[state].append(Edge(label: label, target: state))
        }

        /// Appends the segments after state 0; the state where the last one ends is the only
        /// accepting one.
        mutating func add(_ segments: [PatternSegment]) {
            var current = 0
            for (index, segment) in segments.enumerated() {
                switch segment {
                case .literal(let bytes):
                    current = connect(current, .separator)
                    for byte in bytes { current = connect(current, .byte(byte)) }
                case .glob(let tokens):
                    current = connect(current, .separator)
                    for token in tokens {
                        switch token {
                        case .byte(let byte): current = connect(current, .byte(byte))
                        case .anyOne: current = connect(current, .anyKeyByte)
                        // A fresh state always opens a segment, so this loop never leaks into another.
                        case .anyRun: loop(current, .anyKeyByte)
                        }
                    }
                case .anyDepth where index == segments.count - 1:
                    // One or more segments: a slash, then anything at all.
                    current = connect(current, .separator)
                    loop(current, .anyKeyByte)
                    loop(current, .separator)
                case .anyDepth:
                    // Zero or more segments: a hub at a segment boundary that the next segment leaves
                    // from, with a detour that reads one whole segment and comes back.
                    let hub = newState()
                    epsilons[current].append(hub)
                    let inside = connect(hub, .separator)
                    loop(inside, .anyKeyByte)
                    epsilons[inside].append(hub)
                    current = hub
                }
            }
            finalState = current
        }

        func flattened() -> (edges: [[Edge]], accepting: [Bool]) {
            var flatEdges: [[Edge]] = []
            var accepting: [Bool] = []
            for state in edges.indices {
                let closure = closure(of: state)
                var seen = Set<Edge>()
                flatEdges.append(closure.flatMap { edges[$0] }.filter { seen.insert($0).inserted })
                accepting.append(closure.contains(finalState))
            }
            return (flatEdges, accepting)
        }

        private func closure(of state: Int) -> [Int] {
            var reached = [state]
            var pending = [state]
            while let next = pending.popLast() {
                for target in epsilons[next] where !reached.contains(target) {
                    reached.append(target)
                    pending.append(target)
                }
            }
            return reached
        }
    }
}

/// A set of automaton states as a bit vector: cheap to hash, which the subset construction does a lot.
struct StateSet: Hashable, Sendable {
    private var words: [UInt64]

    init(capacity: Int) {
        words = [UInt64](repeating: 0, count: (capacity + 63) / 64)
    }

    mutating func insert(_ member: Int) {
        words[member / 64] |= 1 << UInt64(member % 64)
    }

    func contains(_ member: Int) -> Bool {
        words[member / 64] & (1 << UInt64(member % 64)) != 0
    }

    var isEmpty: Bool { words.allSatisfy { $0 == 0 } }

    /// The members in increasing order.
    var members: [Int] {
        var result: [Int] = []
        for (wordIndex, word) in words.enumerated() {
            var rest = word
            while rest != 0 {
                result.append(wordIndex * 64 + rest.trailingZeroBitCount)
                rest &= rest - 1
            }
        }
        return result
    }
}
