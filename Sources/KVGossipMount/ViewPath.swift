import Glibc
import KVGossipCore

/// Paths inside the mount, as the view stores them: `/` for the root, `/app/db/url` below it. They
/// are key-shaped on purpose, so a key's path is its view path.
enum ViewPath {
    static let root = "/"

    static func child(_ parent: String, _ name: String) -> String {
        parent == root ? "/" + name : parent + "/" + name
    }

    static func parent(_ path: String) -> String {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")), slash != path.utf8.startIndex else { return root }
        return String(path[..<slash])
    }

    static func name(_ path: String) -> String {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return path }
        return String(path[path.index(after: slash)...])
    }

    /// Every directory above `path` except the root, outermost first: `/a`, `/a/b` for `/a/b/c`.
    static func ancestors(_ path: String) -> [String] {
        var result: [String] = []
        var current = parent(path)
        while current != root {
            result.append(current)
            current = parent(current)
        }
        return result.reversed()
    }

    /// True when `path` is `prefix` or lies below it.
    static func isWithin(_ path: String, _ prefix: String) -> Bool {
        prefix == root || path == prefix || path.hasPrefix(prefix + "/")
    }
}

/// What a name created in the mount becomes.
enum NameKind {
    /// Local scratch: kept in memory, never minted.
    case scratch
    /// A key (for files) or a key prefix (for directories).
    case key(Key)
}

extension ScratchNames {
    /// Classifies a path about to be created as a file. Names that are neither scratch nor a valid
    /// key are refused the way local filesystems refuse bad names: EINVAL, or ENAMETOOLONG for the
    /// length and depth limits (Docs/contract.md §Keys).
    func classifyFile(_ path: String) throws(FSError) -> NameKind {
        if isScratch(path: path) { return .scratch }
        do { return .key(try Key(path)) } catch { throw ScratchNames.errno(for: path) }
    }

    /// Like `classifyFile`, for a directory: it must leave room for at least one key below it.
    func classifyDirectory(_ path: String) throws(FSError) -> NameKind {
        if isScratch(path: path) { return .scratch }
        let segments = path.split(separator: "/").count
        guard segments < Key.maxSegments, path.utf8.count + 2 <= Key.maxBytes else { throw FSError(ENAMETOOLONG) }
        do { return .key(try Key(path)) } catch { throw ScratchNames.errno(for: path) }
    }

    private static func errno(for path: String) -> FSError {
        let segments = path.split(separator: "/")
        if path.utf8.count > Key.maxBytes || segments.count > Key.maxSegments
            || segments.contains(where: { $0.utf8.count > Key.maxSegmentBytes }) {
            return FSError(ENAMETOOLONG)
        }
        return FSError(EINVAL)
    }
}

/// An errno answered to the kernel.
struct FSError: Error, Equatable {
    let code: Int32
    init(_ code: Int32) { self.code = code }
}
