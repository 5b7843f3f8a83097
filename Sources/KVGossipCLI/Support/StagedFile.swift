import Foundation

/// A file's new contents written beside it and synced, waiting to replace it in one rename.
///
/// Readers of `path` see the old bytes or the new ones, never a mix; after a crash the path holds
/// one or the other (the directory is synced after the rename). The temporary name starts with a
/// dot and carries the process id and a random part, so two writers never share one.
struct StagedFile {
    let path: String
    /// Where the new contents wait; a check command reads them here.
    let temporary: String

    /// Writes `contents` next to `path` with exactly `mode` (no umask) and, when given, `owner`
    /// and `group`, and syncs it. Nothing at `path` changes yet.
    init(_ contents: Data, for path: String, mode: mode_t, owner: uid_t? = nil, group: gid_t? = nil) throws {
        let (directory, name) = Self.split(path)
        let temporary = directory + ".\(name).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        // Named by the file asked for: the temporary name means nothing to whoever asked.
        guard fd >= 0 else { throw CLIError("cannot write \(path): \(String(cString: strerror(errno)))") }
        var failure: String?
        contents.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count, failure == nil {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0, errno == EINTR { continue }
                if n <= 0 { failure = "cannot write \(temporary): \(String(cString: strerror(errno)))" } else { offset += n }
            }
        }
        if failure == nil, owner != nil || group != nil, fchown(fd, owner ?? uid_t.max, group ?? gid_t.max) != 0 {
            failure = "cannot give \(path) to \(owner.map(String.init) ?? "-"):\(group.map(String.init) ?? "-"): \(String(cString: strerror(errno)))"
        }
        // After chown, which clears set-id bits.
        if failure == nil, fchmod(fd, mode) != 0 { failure = "cannot set the mode of \(temporary): \(String(cString: strerror(errno)))" }
        if failure == nil, fsync(fd) != 0 { failure = "cannot sync \(temporary): \(String(cString: strerror(errno)))" }
        close(fd)
        if let failure {
            unlink(temporary)
            throw CLIError(failure)
        }
        self.path = path
        self.temporary = temporary
    }

    /// Replaces `path` with the staged contents, then syncs the directory so the rename survives a crash.
    func install() throws {
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            discard()
            throw CLIError("cannot replace \(path): \(reason)")
        }
        let directory = open(Self.split(path).directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
    }

    /// Why `install` is bound to fail, when that can be known before any file of a set is replaced
    /// (a directory where the file goes), else nil.
    func obstacle() -> String? {
        var info = stat()
        guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { return nil }
        return "cannot replace \(path): Is a directory"
    }

    /// Drops the staged contents; `path` keeps its old bytes.
    func discard() {
        unlink(temporary)
    }

    /// Directory (with its trailing slash) and name, split by hand: Foundation's path helpers trap
    /// on one-character names on Linux.
    static func split(_ path: String) -> (directory: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return ("./", path) }
        return (String(path[...slash]), String(path[path.index(after: slash)...]))
    }
}
