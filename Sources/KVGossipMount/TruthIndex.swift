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
    private var below: [String: [String: Int]] = [:]
    private let scratch: ScratchNames

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
