import KVGossipCore

/// What a template set read from the tree while rendering: its dependencies.
///
/// Keys are found by rendering, not by reading the template's text, since a template may compute a
/// key (from a loop variable, or from another key's value). A render against a snapshot that lacks
/// something records it in `uncovered`; the caller fetches a snapshot that covers it and renders
/// again (Docs/templates.md §Dependencies).
public struct TemplateReads: Sendable, Equatable {
    /// Keys looked up one by one, present or not.
    public internal(set) var keys: Set<String> = []
    /// Prefixes and patterns listed.
    public internal(set) var selections: Set<Pattern> = []
    /// Keys the listings returned.
    public internal(set) var listed: Set<String> = []
    /// Lookups and listings the snapshot could not answer.
    public internal(set) var uncovered: Set<Pattern> = []
    /// Keys read without a default that hold no value, in the order first read.
    public internal(set) var missing: [String] = []

    public init() {}

    /// The selection a snapshot must cover for the next render: every key read (as a literal
    /// pattern) and every listing.
    public var patterns: Set<Pattern> {
        selections.union(keys.compactMap { try? Pattern($0) })
    }

    /// The keys whose values went into the output, or whose absence did: what `--wait-synced`
    /// requires to be synced.
    public var usedKeys: Set<String> { keys.union(listed) }

    mutating func noteMissing(_ key: String) {
        if !missing.contains(key) { missing.append(key) }
    }

    /// Both renders' reads, for a set of templates rendered from one snapshot.
    mutating func merge(_ other: TemplateReads) {
        keys.formUnion(other.keys)
        selections.formUnion(other.selections)
        listed.formUnion(other.listed)
        uncovered.formUnion(other.uncovered)
        for key in other.missing { noteMissing(key) }
    }
}
