import KVGossipCore

/// A key renamed onto a scratch name (`mv f f~`, vim's backup rename). Tombstoning it right away
/// would be wrong for vim, which renames `f` to `f~` and then creates `f` again: the network would
/// see the key deleted and re-created. So the key is hidden from the view, its bytes live on in the
/// scratch file, and the tombstone is deferred until one of:
/// - the key is committed again (vim's new `f`): no tombstone at all, one new value;
/// - the scratch copy is renamed back with the same bytes: nothing is minted;
/// - the scratch copy is unlinked or renamed onto another key, or the grace period ends: tombstone.
struct HiddenKey {
    /// The scratch file holding the key's bytes; nil once it is gone.
    var holder: String?
    var deadlineMs: UInt64
}

extension FSState {
    /// Decides the fate of a hidden key whose scratch copy went away or whose grace expired.
    mutating func resolveHidden(_ path: String) {
        guard hidden[path] != nil else { return }
        if let entry = view[path] {
            if entry.isUncommittedKey {
                // Being written again right now: its commit will supersede the old value. Wait for it.
                hidden[path]!.holder = nil
                hidden[path]!.deadlineMs = nowMs() + ctx.hiddenGraceMs
            } else {
                hidden[path] = nil
            }
            return
        }
        hidden[path] = nil
        guard let key = key(path), truth.liveEntry(path) != nil else { return }
        do {
            _ = try mint(key, nil)
        } catch {
            ctx.logger.error("deferred tombstone failed", metadata: ["key": "\(path)", "errno": "\(error.code)"])
        }
    }

    /// The scratch file at `scratchPath` is gone or became a key: keys it held are resolved.
    mutating func releaseHeld(by scratchPath: String) {
        for (path, entry) in hidden where entry.holder == scratchPath {
            resolveHidden(path)
        }
    }

    /// A scratch file moved: it keeps holding the same keys.
    mutating func moveHolder(from: String, to: String) {
        for (path, entry) in hidden where entry.holder == from {
            hidden[path]!.holder = to
        }
    }

    mutating func expireHidden(nowMs now: UInt64) {
        for (path, entry) in hidden where entry.deadlineMs <= now {
            resolveHidden(path)
        }
    }

    /// At unmount the user's renames stand: every hidden key is tombstoned unless re-created.
    mutating func resolveAllHidden() {
        for path in hidden.keys {
            if view[path]?.isUncommittedKey == true { hidden[path] = nil } else { resolveHidden(path) }
        }
    }

    var nextHiddenDeadlineMs: UInt64? {
        hidden.values.map(\.deadlineMs).min()
    }
}
