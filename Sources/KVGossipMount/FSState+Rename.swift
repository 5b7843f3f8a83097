import CFuse3
import Glibc
import KVGossipCore

extension FSState {
    /// `mv`, `os.replace`, `sed -i`, editors' saves. Files only: renaming a directory answers EXDEV,
    /// so `mv` falls back to copying and removing, which mints and tombstones key by key (a network
    /// has no atomic subtree move, and a half-moved subtree is worse than an explicit copy).
    mutating func rename(_ parent: UInt64, _ name: String, _ newParent: UInt64, _ newName: String, flags: UInt32, isSelf: Bool) throws(FSError) {
        guard flags & ~UInt32(CFUSE_RENAME_NOREPLACE) == 0 else { throw FSError(EINVAL) }
        let from = try childPath(parent, name)
        let to = try childPath(newParent, newName)
        let source = try entry(from)
        guard from != to else { return }
        if source.isDirectory { throw FSError(EXDEV) }
        if let target = view[to] {
            if flags & UInt32(CFUSE_RENAME_NOREPLACE) != 0 { throw FSError(EEXIST) }
            if target.isDirectory { throw FSError(EISDIR) }
        }
        let targetKind = try ctx.scratch.classifyFile(to)
        switch (source.kind, targetKind) {
        case (.directory, _):
            throw FSError(EXDEV)
        case (.scratch, .scratch):
            replaceTarget(to)
            move(from, to, as: source)
            moveHolder(from: from, to: to)
        case (.scratch, .key(let key)):
            try publishScratch(from, source, onto: to, key, isSelf: isSelf)
        case (.key, .scratch):
            try hideKey(from, source, into: to, isSelf: isSelf)
        case (.key, .key(let toKey)):
            try renameKey(from, source, to, toKey, isSelf: isSelf)
        }
        view.keepIfEmptied(ViewPath.parent(from))
    }

    /// Scratch onto a key: the editor's or `sed -i`'s finished temporary becomes the key's ONE new
    /// value. Moving a key's own backup back (same bytes) restores it without minting.
    private mutating func publishScratch(_ from: String, _ source: ViewEntry, onto to: String, _ key: Key, isSelf: Bool) throws(FSError) {
        guard isSelf || ctx.node.mayWrite(key) else { throw FSError(EACCES) }
        let bytes = source.scratch?.bytes ?? []
        guard bytes.count <= ctx.maxValueBytes else { throw FSError(EFBIG) }
        let shown: TruthEntry
        if hidden[to]?.holder == from, let live = truth.liveEntry(to), let stored = try storedRecord(key),
            stored.version == live.version, stored.value == bytes {
            shown = live
        } else {
            shown = TruthEntry(try mint(key, bytes))
        }
        replaceTarget(to)
        move(from, to, as: .key(shown, mtimeMs: shown.mtimeMs))
        view.clearLocal(above: to)
        hidden[to] = nil
        releaseHeld(by: from)
        if let ino = inodes.existing(to) { pendingAttributeInvalidations.append(ino) }
    }

    /// A key onto a scratch name: hidden now, tombstoned later unless re-created (HiddenKeys.swift).
    private mutating func hideKey(_ from: String, _ source: ViewEntry, into to: String, isSelf: Bool) throws(FSError) {
        if source.isUncommittedKey {
            // Nothing committed yet: the name simply becomes scratch; open writers commit into it.
            replaceTarget(to)
            move(from, to, as: .scratchFile(ScratchData(mode: 0o644, mtimeMs: nowMs())))
            resolveHidden(from)
            return
        }
        guard let key = key(from) else { throw FSError(EINVAL) }
        guard isSelf || ctx.node.mayWrite(key) else { throw FSError(EACCES) }
        let bytes = try committedValue(from)
        replaceTarget(to)
        move(from, to, as: .scratchFile(ScratchData(bytes: bytes, mode: 0o644, mtimeMs: source.mtimeMs)))
        hidden[from] = HiddenKey(holder: to, deadlineMs: nowMs() + ctx.hiddenGraceMs)
    }

    /// Key to key: the target gets the source's bytes, the source a tombstone (Docs/filesystem.md §Renames).
    private mutating func renameKey(_ from: String, _ source: ViewEntry, _ to: String, _ toKey: Key, isSelf: Bool) throws(FSError) {
        guard isSelf || ctx.node.mayWrite(toKey) else { throw FSError(EACCES) }
        if source.isUncommittedKey {
            // Not committed yet: its open writer will commit under the new name.
            replaceTarget(to)
            move(from, to, as: source)
            resolveHidden(from)
            return
        }
        guard let fromKey = key(from) else { throw FSError(EINVAL) }
        guard isSelf || ctx.node.mayWrite(fromKey) else { throw FSError(EACCES) }
        let bytes = try committedValue(from)
        let record = try mint(toKey, bytes)
        do {
            _ = try mint(fromKey, nil)
        } catch {
            // The target holds the value already; show it, leave the source, and report the failure.
            if view[to] == nil {
                view.insert(to, .key(TruthEntry(record), mtimeMs: record.timestamp.physicalMs), nowMs: nowMs())
            } else {
                showCommitted(to, record)
            }
            throw error
        }
        replaceTarget(to)
        move(from, to, as: .key(TruthEntry(record), mtimeMs: record.timestamp.physicalMs))
        view.clearLocal(above: to)
        hidden[to] = nil
    }

    /// Drops whatever `to` named before a rename over it. Open handles on it keep working and
    /// commit nowhere, as writes to a replaced local file vanish.
    private mutating func replaceTarget(_ to: String) {
        guard let old = view[to] else { return }
        view.remove(to, nowMs: nowMs())
        if old.kind == .scratch { releaseHeld(by: to) }
    }

    /// Moves a name and its inode; the entry may change kind (key ↔ scratch).
    private mutating func move(_ from: String, _ to: String, as entry: ViewEntry) {
        let now = nowMs()
        view.remove(from, nowMs: now)
        view.insert(to, entry, nowMs: now)
        inodes.move(from: from, to: to)
    }
}
