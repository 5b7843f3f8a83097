import KVGossipCore

/// What the store holds for one key, as far as the mount needs it. A class on purpose, and
/// immutable: the truth and the view hold the same entry for a key that is shown as stored, so a
/// large tree keeps one copy of each version (with its 32-byte digest) instead of two inline in two
/// dictionaries whose buckets stand half empty (Docs/filesystem.md §Memory).
final class TruthEntry: Equatable, Sendable {
    let version: RecordVersion
    let live: Bool
    let size: Int
    let mtimeMs: UInt64

    convenience init(_ record: Record) {
        self.init(version: record.version, live: record.kind == .value, size: record.value.count,
                  mtimeMs: record.timestamp.physicalMs)
    }

    init(version: RecordVersion, live: Bool, size: Int, mtimeMs: UInt64) {
        self.version = version
        self.live = live
        self.size = size
        self.mtimeMs = mtimeMs
    }

    static func == (a: TruthEntry, b: TruthEntry) -> Bool {
        a === b || (a.version == b.version && a.live == b.live && a.size == b.size && a.mtimeMs == b.mtimeMs)
    }
}

/// An in-memory copy of the store's key set, so the mount can answer "is this a directory" without a
/// prefix scan. Fed from the store's change stream and from the mount's own mints; every update is
/// ordered by `RecordVersion`, so the two feeds may interleave in any order and still agree with the
/// store. Keys with a scratch segment are left out: they are never shown (Docs/filesystem.md §Scratch names).
struct TruthIndex {
    private(set) var entries: [String: TruthEntry] = [:]
    /// prefix → child name → live keys at or below that child.
    private(set) var below: [String: [String: Int]] = [:]
    private let scratch: ScratchNames
    /// Counts `load` gathered for one directory's keys and has not added to `below` yet.
    private var loading = LoadingRun()

    init(scratch: ScratchNames) {
        self.scratch = scratch
    }

    /// Folds in a record; false when it is not newer than what is known (a replay or a race).
    @discardableResult
    mutating func apply(_ record: Record) -> Bool {
        let path = record.key.path
        guard !scratch.isScratch(path: path) else { return false }
        if let old = entries[path], old.version >= record.version { return false }
        set(path, TruthEntry(record))
        return true
    }

    /// Room for `count` keys (see `ViewTree.reserve`).
    mutating func reserve(_ count: Int) {
        entries.reserveCapacity(count)
    }

    /// `apply` for the mount's start, which reads the store's records one per key in key order.
    /// The result is the same as `apply`'s; what differs is the cost. A directory's keys come one
    /// after another, so their counts are gathered in one small table and added to `below` once
    /// per run of siblings (`finishLoading`), where `apply` hashes every directory above each key
    /// twice; and a key's entry is stored with one lookup, not two. At a million keys these lookups
    /// were a third of the start (Docs/filesystem.md §Memory). Call `finishLoading` before anything
    /// else reads or changes the index.
    mutating func load(_ record: Record) {
        let path = record.key.path
        guard !scratch.isScratch(path: path) else { return }
        let entry = TruthEntry(record)
        if let earlier = entries.updateValue(entry, forKey: path) {
            // Not from a scan, which gives each key once: put it back and take the ordinary path.
            entries[path] = earlier
            finishLoading()
            apply(record)
            return
        }
        guard entry.live else { return }
        let parent = ViewPath.parent(path)
        if parent != loading.parent {
            finishLoading()
            loading.parent = parent
        }
        loading.children[ViewPath.name(path), default: 0] += 1
        loading.keys += 1
    }

    /// Adds the counts `load` gathered to `below`.
    mutating func finishLoading() {
        guard let parent = loading.parent else { return }
        let run = loading
        loading = LoadingRun()
        if below[parent] == nil {
            below[parent] = run.children
        } else {
            below[parent]!.merge(run.children, uniquingKeysWith: +)
        }
        var current = parent
        while current != ViewPath.root {
            let up = ViewPath.parent(current)
            _ = TruthIndex.add(run.keys, to: ViewPath.name(current), in: &below[up, default: [:]])
            current = up
        }
    }

    /// Live keys `load` has seen in one directory since the last `finishLoading`.
    private struct LoadingRun {
        var parent: String?
        var children: [String: Int] = [:]
        var keys = 0
    }

    /// A key unset by a revocation: gone, with no older value to fall back to. Remembering the
    /// removed version as dead keeps a late replay of that same record from resurrecting it.
    @discardableResult
    mutating func unset(_ key: Key, previous: RecordVersion) -> Bool {
        let path = key.path
        guard let old = entries[path], old.version <= previous, old.live else { return false }
        set(path, TruthEntry(version: previous, live: false, size: 0, mtimeMs: old.mtimeMs))
        return true
    }

    /// The entry for `path` when it holds exactly `version`: what the view shows of a key that is
    /// shown as stored, so the two keep one object between them.
    func entry(_ path: String, at version: RecordVersion) -> TruthEntry? {
        guard let e = entries[path], e.version == version else { return nil }
        return e
    }

    func liveEntry(_ path: String) -> TruthEntry? {
        guard let e = entries[path], e.live else { return nil }
        return e
    }

    /// True when a live key lies strictly below `path`: the path is then a directory.
    func hasDescendants(_ path: String) -> Bool {
        !(below[path]?.isEmpty ?? true)
    }

    func childNames(_ path: String) -> [String] {
        below[path].map { Array($0.keys) } ?? []
    }

    /// Adds `delta` to `name`'s count, dropping the name at zero; true when no name is left. One
    /// hash of the name when the count rises, which is every key of a tree being loaded.
    private static func add(_ delta: Int, to name: String, in children: inout [String: Int]) -> Bool {
        children[name, default: 0] += delta
        if delta < 0, children[name, default: 0] <= 0 { children[name] = nil }
        return children.isEmpty
    }

    private mutating func set(_ path: String, _ entry: TruthEntry) {
        let wasLive = entries.updateValue(entry, forKey: path)?.live ?? false
        guard wasLive != entry.live else { return }
        let delta = entry.live ? 1 : -1
        var current = path
        while current != ViewPath.root {
            let parent = ViewPath.parent(current)
            let name = ViewPath.name(current)
            // Changed in place: a copy taken out and stored back would copy the directory's whole
            // dictionary for every key (quadratic in the size of a directory when a tree loads).
            if TruthIndex.add(delta, to: name, in: &below[parent, default: [:]]) { below[parent] = nil }
            current = parent
        }
    }
}
