import Glibc
import KVGossipCore

extension FSState {
    mutating func lookup(_ parent: UInt64, _ name: String) throws(FSError) -> Attr {
        let path = try childPath(parent, name)
        guard let path = view.stored(path)?.path else { throw FSError(ENOENT) }
        // The number is taken in a statement of its own: as an argument of `attr`, a method of self,
        // it would mutate the inode table while a copy of self was alive, and the table's storage
        // would be copied whole at every lookup (quadratic over a tree: 100,000 keys never mounted).
        let ino = inodes.ino(for: path, lookup: true)
        return attr(path, ino: ino)!
    }

    mutating func forget(_ ino: UInt64, count: UInt64) {
        inodes.forget(ino, count: count)
        if inodes.path(of: ino) == nil { pageCacheVersions.removeValue(forKey: ino) }
    }

    /// A directory made by a user is local until a key is committed below it (Docs/filesystem.md §Mapping);
    /// one made by the follower is a key prefix that arrived from elsewhere.
    mutating func mkdir(_ parent: UInt64, _ name: String, isSelf: Bool) throws(FSError) -> Attr {
        let path = try childPath(parent, name)
        guard view[path] == nil else { throw FSError(EEXIST) }
        let local: Bool
        switch try ctx.scratch.classifyDirectory(path) {
        case .scratch: local = true
        case .key: local = !isSelf
        }
        let now = nowMs()
        guard view.insert(path, .directory(local: local, mtimeMs: now), nowMs: now) else { throw FSError(ENOENT) }
        let ino = inodes.ino(for: path, lookup: true)  // not as an argument of `attr`: see `lookup`
        return attr(path, ino: ino)!
    }

    /// `rm`: a tombstone for a committed key; scratch files and never-committed files just go.
    mutating func unlink(_ parent: UInt64, _ name: String, isSelf: Bool) throws(FSError) {
        let path = try childPath(parent, name)
        let entry = try entry(path)
        switch entry.kind {
        case .directory:
            throw FSError(EISDIR)
        case .scratch:
            removeName(path)
            releaseHeld(by: path)
        case .key:
            if isSelf {
                // The follower replays a deletion already stored.
                removeName(path)
                return
            }
            if entry.isUncommittedKey {
                removeName(path)
                resolveHidden(path)
                pendingReconciles.insert(path)
            } else {
                guard let key = key(path), ctx.node.mayWrite(key) else { throw FSError(EACCES) }
                _ = try mint(key, nil)
                removeName(path)
            }
        }
        view.keepIfEmptied(ViewPath.parent(path))
    }

    /// Directories hold no data: removing an empty one changes only the view.
    mutating func rmdir(_ parent: UInt64, _ name: String, isSelf: Bool) throws(FSError) {
        let path = try childPath(parent, name)
        let entry = try entry(path)
        guard entry.isDirectory else { throw FSError(ENOTDIR) }
        guard entry.children.isEmpty else { throw FSError(ENOTEMPTY) }
        removeName(path)
        if !isSelf {
            view.keepIfEmptied(ViewPath.parent(path))
            // Keys may still lie below in the store (not delivered yet); the follower re-shows them.
            pendingReconciles.insert(path)
        }
    }

    mutating func removeName(_ path: String) {
        view.remove(path, nowMs: nowMs())
        inodes.detach(path)
    }

    mutating func openDirectory(_ ino: UInt64) throws(FSError) -> UInt64 {
        let path = try path(ino)
        let entry = try entry(path)
        guard entry.isDirectory else { throw FSError(ENOTDIR) }
        let parentIno = path == ViewPath.root ? ino : inodes.existing(ViewPath.parent(path)) ?? ino
        var items = [
            DirectoryListing.Item(name: ".", ino: ino, isDirectory: true),
            DirectoryListing.Item(name: "..", ino: parentIno, isDirectory: true),
        ]
        for name in entry.children.sorted() {
            let child = ViewPath.child(path, name)
            let stored = view.stored(child)
            items.append(DirectoryListing.Item(
                name: name, ino: inodes.ino(for: stored?.path ?? child, lookup: false), isDirectory: stored?.entry.isDirectory ?? false))
        }
        let fh = nextHandle
        nextHandle += 1
        listings[fh] = DirectoryListing(items: items)
        return fh
    }
}
