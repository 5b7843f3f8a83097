import KVGossipClient
import KVGossipCore

/// The values one render may read: the live records matching a set of patterns, all read by the
/// agent at one moment (Docs/templates.md §Consistency).
///
/// A render reads nothing else: a lookup outside the patterns is not answered "missing" but
/// reported as a dependency to fetch, and the render is made again from a new snapshot that covers
/// it. So one output never mixes two moments of the tree.
public struct Snapshot: Sendable, Equatable {
    /// What was asked of the agent.
    public let patterns: Set<Pattern>
    /// Key → live value, only keys matching one of `patterns`.
    public let records: [String: KeyRecord]

    /// Assembles a snapshot from an agent's answer, keeping only live values the patterns select
    /// (an agent that ignores a selection answers more than it was asked).
    public init(patterns: Set<Pattern>, answer: [KeyRecord]) {
        self.patterns = patterns
        var records: [String: KeyRecord] = [:]
        for record in answer where !record.isTombstone {
            guard let key = try? Key(record.key), patterns.contains(where: { $0.matches(key) }) else { continue }
            records[record.key] = record
        }
        self.records = records
    }

    /// The snapshot of nothing: what a template set is first rendered against, to learn what it reads.
    public static let empty = Snapshot(patterns: [], answer: [])

    /// Whether the snapshot can say what `key` holds (including "nothing").
    public func covers(key: Key) -> Bool {
        patterns.contains { $0.matches(key) }
    }

    /// Whether the snapshot holds everything `pattern` selects. Only the same pattern counts: an
    /// inclusion test between patterns is not worth its cost here.
    public func covers(selection pattern: Pattern) -> Bool {
        patterns.contains(pattern)
    }

    public func record(_ key: String) -> KeyRecord? { records[key] }

    /// The live records `pattern` selects, in key order.
    public func records(matching pattern: Pattern) -> [KeyRecord] {
        records.values.filter { (try? Key($0.key)).map(pattern.matches) ?? false }.sorted { $0.key < $1.key }
    }
}
