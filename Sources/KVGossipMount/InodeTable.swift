import CFuse3

/// Stable inode numbers for view paths. A number is handed out the first time the kernel sees a
/// path and kept while the kernel holds lookups on it; it moves with a rename, as on a local
/// filesystem, and is detached (path forgotten, number kept until FORGET) by unlink and rmdir.
/// Numbers are never reused, so the generation stays 0.
struct InodeTable {
    struct Inode {
        var path: String?
        var lookups: UInt64
    }

    static let rootID: UInt64 = UInt64(FUSE_ROOT_ID)

    private var byPath: [String: UInt64] = [ViewPath.root: InodeTable.rootID]
    private var nodes: [UInt64: Inode] = [InodeTable.rootID: Inode(path: ViewPath.root, lookups: 1)]
    private var next: UInt64 = InodeTable.rootID + 1

    func path(of ino: UInt64) -> String? {
        nodes[ino]?.path
    }

    func existing(_ path: String) -> UInt64? {
        byPath[path]
    }

    /// The number for `path`, allocated if needed. `lookup` counts one kernel reference (every
    /// entry reply does); readdir hands out numbers without references.
    mutating func ino(for path: String, lookup: Bool) -> UInt64 {
        let ino: UInt64
        if let known = byPath[path] {
            ino = known
        } else {
            ino = next
            next += 1
            byPath[path] = ino
            nodes[ino] = Inode(path: path, lookups: 0)
        }
        if lookup { nodes[ino]!.lookups += 1 }
        return ino
    }

    /// The kernel dropped `count` references.
    mutating func forget(_ ino: UInt64, count: UInt64) {
        guard ino != InodeTable.rootID, var node = nodes[ino] else { return }
        node.lookups = node.lookups > count ? node.lookups - count : 0
        if node.lookups == 0 {
            nodes[ino] = nil
            if let path = node.path, byPath[path] == ino { byPath[path] = nil }
        } else {
            nodes[ino] = node
        }
    }

    /// `path` no longer names its inode (unlink, rmdir, replaced by a rename).
    mutating func detach(_ path: String) {
        guard let ino = byPath.removeValue(forKey: path) else { return }
        if nodes[ino]?.lookups ?? 0 == 0 {
            nodes[ino] = nil
        } else {
            nodes[ino]!.path = nil
        }
    }

    /// A rename: the source's inode now answers to `to`; whatever `to` named before is detached.
    mutating func move(from: String, to: String) {
        detach(to)
        guard let ino = byPath.removeValue(forKey: from) else { return }
        byPath[to] = ino
        nodes[ino]?.path = to
    }

    var count: Int { nodes.count }
}
