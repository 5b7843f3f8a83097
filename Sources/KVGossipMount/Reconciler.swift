/// One request the follower makes through the mountpoint so the kernel raises the inotify events
/// a local edit would (no FUSE notification does that: Docs/filesystem.md §No inotify from notifications).
enum SelfOp: Equatable {
    case mkdir(String)
    case rmdir(String)
    case unlink(String)
    /// O_CREAT|O_EXCL + write + close: IN_CREATE, IN_MODIFY, IN_CLOSE_WRITE.
    case create(String)
    /// O_TRUNC + write + close: IN_MODIFY, IN_CLOSE_WRITE.
    case write(String)
}

extension FSState {
    /// What the store says a path should look like in the view.
    enum Want: Equatable {
        case directory
        case file(TruthEntry)
        case nothing
    }

    func want(_ path: String) -> Want {
        if path == ViewPath.root || truth.hasDescendants(path) { return .directory }
        // A key renamed onto a scratch name stays out of the view until it is resolved.
        if hidden[path] != nil { return .nothing }
        if let entry = truth.liveEntry(path) { return .file(entry) }
        return .nothing
    }

    /// The follower's next step at `path`, or nil while a save of that key is being minted outside
    /// the lock: its handler shows the record and queues the path again (`finishCommit`, which
    /// wakes the follower for it), and replaying the record meanwhile would write the mount's own
    /// save a second time.
    mutating func nextReplayStep(for path: String) -> SelfOp? {
        if committing.contains(path) {
            skippedWhileCommitting.insert(path)
            return nil
        }
        return nextOp(for: path)
    }

    /// The next request that brings the view around `path` closer to the store, or nil when they
    /// agree. The follower asks again after each request, so every step sees the view as it is
    /// (local edits may interleave) and nothing is planned against a stale picture.
    ///
    /// Order: directories above the key first (so a new key's directories are created before it),
    /// then the key and anything below it, then the directories above again, innermost first (to
    /// remove directories the key's removal left empty, or show a value a directory had shadowed).
    func nextOp(for path: String) -> SelfOp? {
        let ancestors = ViewPath.ancestors(path)
        var reachable = true
        for dir in ancestors {
            let have = view[dir]
            if have?.isDirectory == true { continue }
            guard want(dir) == .directory, let have else {
                if want(dir) == .directory { return .mkdir(dir) }
                reachable = false
                break
            }
            // A file stands where a directory belongs: the directory wins (Docs/filesystem.md §Mapping),
            // unless a local writer is creating that file right now.
            if have.kind == .key && !have.isUncommittedKey { return .unlink(dir) }
            reachable = false
            break
        }
        if reachable, let op = subtreeOp(path, deep: true) { return op }
        for dir in ancestors.reversed() {
            if let op = subtreeOp(dir, deep: false) { return op }
        }
        return nil
    }

    private func subtreeOp(_ path: String, deep: Bool) -> SelfOp? {
        let wanted = want(path)
        guard let have = view[path] else {
            guard view[ViewPath.parent(path)]?.isDirectory == true else { return nil }
            switch wanted {
            case .directory: return .mkdir(path)
            case .file: return .create(path)
            case .nothing: return nil
            }
        }
        switch have.kind {
        case .scratch:
            return nil
        case .key:
            guard let shown = have.shown else { return nil }
            switch wanted {
            case .directory, .nothing: return .unlink(path)
            case .file(let entry): return entry.version == shown.version ? nil : .write(path)
            }
        case .directory:
            if deep {
                let names = Set(truth.childNames(path)).union(have.children)
                for name in names.sorted() where !ctx.scratch.isScratch(segment: name) {
                    if let op = subtreeOp(ViewPath.child(path, name), deep: true) { return op }
                }
            }
            if wanted != .directory, have.children.isEmpty, !have.local, path != ViewPath.root {
                return .rmdir(path)
            }
            return nil
        }
    }
}
