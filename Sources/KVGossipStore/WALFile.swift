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
            var st = stat()
            guard fstat(fd, &st) == 0 else {
                let failed = errno
                close(fd)
                errno = failed
                return nil
            }
            self.fd = fd
            device = UInt64(st.st_dev)
            inode = UInt64(st.st_ino)
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
        var st = stat()
        guard stat(path, &st) == 0 else {
            guard errno == ENOENT else { throw WALFileError(errno: errno) }
            // Let the removed log's blocks go.
            file.withLock { $0 = nil }
            return nil
        }
        return try file.withLock { file throws(WALFileError) -> Opened? in
            if let current = file, current.device == UInt64(st.st_dev), current.inode == UInt64(st.st_ino) { return current }
            guard let reopened = Opened(path: path) else { throw WALFileError(errno: errno) }
            file = reopened
            return reopened
        }
    }
}

struct WALFileError: Error {
    let errno: Int32
}
