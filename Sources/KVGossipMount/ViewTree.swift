/// The bytes of a scratch file. A reference type on purpose: a scratch file behaves like a file on
/// tmpfs, so every open handle, and the name after a rename, share one content.
final class ScratchData {
    var bytes: [UInt8]
    var mode: UInt32
    var mtimeMs: UInt64

    init(bytes: [UInt8] = [], mode: UInt32, mtimeMs: UInt64) {
        self.bytes = bytes
        self.mode = mode
        self.mtimeMs = mtimeMs
    }
}

/// One name in the view.
struct ViewEntry {
    enum Kind { case directory, key, scratch }

    // The two one-byte fields come first and together: a view holds an entry per name, in a
    // dictionary whose buckets stand up to half empty, so padding costs twice over.
    var kind: Kind
    /// Directories: made here (by `mkdir`, or emptied by a local `rm`), so kept while empty. A
    /// directory that exists only because keys lie below it goes when the network removes them.
    var local = false
    var mtimeMs: UInt64
    /// Directories: the names directly inside.
    var children: Set<String> = []
    /// Keys: the version shown; nil while a file created here has not been committed yet.
    var shown: TruthEntry?
    /// Scratch files: the shared content.
    var scratch: ScratchData?

    static func directory(local: Bool, mtimeMs: UInt64) -> ViewEntry {
        ViewEntry(kind: .directory, local: local, mtimeMs: mtimeMs)
    }

    static func key(_ shown: TruthEntry?, mtimeMs: UInt64) -> ViewEntry {
        ViewEntry(kind: .key, mtimeMs: shown?.mtimeMs ?? mtimeMs, shown: shown)
    }

    static func scratchFile(_ data: ScratchData) -> ViewEntry {
        ViewEntry(kind: .scratch, mtimeMs: data.mtimeMs, scratch: data)
    }

    var isDirectory: Bool { kind == .directory }
    var isUncommittedKey: Bool { kind == .key && shown == nil }

    var size: Int {
        switch kind {
        case .directory: 0
        case .key: shown?.size ?? 0
        case .scratch: scratch?.bytes.count ?? 0
        }
    }
}

/// The tree the kernel sees: keys shown as files, their prefixes as directories, plus local
/// directories and scratch files. It changes only through requests to the mount: local edits, and
/// the follower's own writes that replay changes made elsewhere (so the kernel emits the inotify
/// events those changes deserve).
struct ViewTree {
    private(set) var entries: [String: ViewEntry]

    init(nowMs: UInt64) {
        entries = [ViewPath.root: .directory(local: true, mtimeMs: nowMs)]
    }

    subscript(path: String) -> ViewEntry? {
        entries[path]
    }

    /// Room for `count` entries, so loading a large tree does not rehash every path each time the
    /// table doubles.
    mutating func reserve(_ count: Int) {
        entries.reserveCapacity(count)
    }

    /// The entry at `path` with the view's own instance of the path (its dictionary key), or nil
    /// when the view has no such name. Tables that keep paths of their own (the inode table) take
    /// this one, so the string's storage is shared instead of held twice.
    func stored(_ path: String) -> (path: String, entry: ViewEntry)? {
        entries.index(forKey: path).map { (entries[$0].key, entries[$0].value) }
    }

    /// Adds an entry whose parent directory exists; returns false otherwise.
    @discardableResult
    mutating func insert(_ path: String, _ entry: ViewEntry, nowMs: UInt64) -> Bool {
        // Three lookups of a path, not five: the parent is found once and changed where it lies
        // (before the insertion, which may move every entry). A million keys load through here.
        guard entries.index(forKey: path) == nil, let parent = entries.index(forKey: ViewPath.parent(path)),
              entries.values[parent].isDirectory else { return false }
        entries.values[parent].children.insert(ViewPath.name(path))
        entries.values[parent].mtimeMs = nowMs
        entries[path] = entry
        return true
    }

    /// Removes an entry (a directory only when empty).
    @discardableResult
    mutating func remove(_ path: String, nowMs: UInt64) -> ViewEntry? {
        guard path != ViewPath.root, let entry = entries[path], entry.children.isEmpty else { return nil }
        entries[path] = nil
        let parent = ViewPath.parent(path)
        entries[parent]?.children.remove(ViewPath.name(path))
        entries[parent]?.mtimeMs = nowMs
        return entry
    }

    mutating func update(_ path: String, _ body: (inout ViewEntry) -> Void) {
        guard var entry = entries[path] else { return }
        body(&entry)
        entries[path] = entry
    }

    /// A removal by a local command leaves the directory in place, as on a local filesystem
    /// (`rm -r` unlinks, then removes the directory itself).
    mutating func keepIfEmptied(_ directory: String) {
        guard directory != ViewPath.root, entries[directory]?.children.isEmpty == true else { return }
        entries[directory]!.local = true
    }

    /// A committed key makes its directories key prefixes again: no longer held only locally.
    /// (A key's ancestors are never scratch, so this never touches a scratch directory.)
    mutating func clearLocal(above path: String) {
        for dir in ViewPath.ancestors(path) where entries[dir]?.local == true {
            entries[dir]!.local = false
        }
    }
}
