import CFileIdentity
import Foundation
import Synchronization

/// A descriptor of the store's write-ahead log opened beside SQLite's own, for work SQLite does
/// not do itself: syncing commits made at `synchronous = NORMAL` (`WALSync`) and reading the log
/// ahead of the writer (`WALReadAhead`). SQLite keeps no locks on the log file, so a descriptor of
/// it takes none away (not so for the database file or the `-shm` index).
final class WALFile: Sendable {
    /// One open descriptor of the log, closed when the last reference goes: callers keep it alive
    /// (`withExtendedLifetime`) while they use `fd`, since another thread may replace it meanwhile.
    final class Opened: Sendable {
        let fd: Int32
        let device: UInt64
        let inode: UInt64

        fileprivate init?(path: String) {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return nil }
            guard let identity = FileIdentity(descriptor: fd) else {
                let failed = errno
                close(fd)
                errno = failed
                return nil
            }
            self.fd = fd
            device = identity.device
            inode = identity.inode
        }

        deinit { close(fd) }
    }

    let path: String
    private let file = Mutex<Opened?>(nil)

    /// - Parameter databasePath: the database file; its log is that path plus `-wal`.
    init(databasePath: String) {
        path = databasePath + "-wal"
    }

    /// The open log, reopened if SQLite replaced the file; nil when there is no log, in which case
    /// SQLite checkpointed it into the database (syncing that) and removed it. Throws the errno
    /// of a failed `stat` or `open`.
    func current() throws(WALFileError) -> Opened? {
        guard let identity = FileIdentity(path: path) else {
            guard errno == ENOENT else { throw WALFileError(errno: errno) }
            // Let the removed log's blocks go.
            file.withLock { $0 = nil }
            return nil
        }
        return try file.withLock { file throws(WALFileError) -> Opened? in
            if let current = file, current.device == identity.device, current.inode == identity.inode { return current }
            guard let reopened = Opened(path: path) else { throw WALFileError(errno: errno) }
            file = reopened
            return reopened
        }
    }
}

/// Which file a path or descriptor names: its device and inode, asked of `statx` for those alone.
///
/// Why not `stat`: on a filesystem with fine-grained timestamps on demand (ext4 and others since
/// Linux 6.13), asking for a file's times marks them as seen, and the next write then stamps the
/// inode with a fresh fine-grained time instead of leaving the coarse one that has not changed.
/// The inode is then dirty at every commit, and every `fdatasync` of the log writes the inode's
/// block as well as the log's (measured: one more device write per sync, where a log nobody stats
/// dirties its inode only when the coarse clock has ticked since the last write). The log is
/// looked up before every commit, so a plain `stat` here cost a write per commit.
struct FileIdentity: Equatable {
    let device: UInt64
    let inode: UInt64

    init?(path: String) {
        var device: UInt64 = 0, inode: UInt64 = 0
        guard kvg_path_identity(path, &device, &inode) == 0 else { return nil }
        self.device = device
        self.inode = inode
    }

    init?(descriptor: Int32) {
        var device: UInt64 = 0, inode: UInt64 = 0
        guard kvg_descriptor_identity(descriptor, &device, &inode) == 0 else { return nil }
        self.device = device
        self.inode = inode
    }
}

struct WALFileError: Error {
    let errno: Int32
}
