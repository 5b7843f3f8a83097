import Foundation
import GRDB

/// Keeps the write-ahead log at least a given length by writing zeros past its end, so commits
/// rewrite space the file already has instead of growing it.
///
/// Why: a commit's sync costs more when it grows the log. Growing changes the file's size, so
/// `fdatasync` must write the file's metadata as well as its data (on this project's test machine,
/// ext4: a 4 KB append synced in 183–257 µs at the median, a 4 KB overwrite in 101–127 µs; three
/// agents writing back to back answered 5–17 % sooner at the median with their logs reserved). SQLite already
/// rewrites its log in place once a checkpoint has caught up with it (it starts over from the top
/// and never shrinks the file while the database is open), but a new log, or one that has not yet
/// reached its first checkpoint, grows at every commit: for an agent that sees a few writes an
/// hour, that is every commit for months.
///
/// Why it is safe: a frame counts only with the log header's salt and a checksum that runs on
/// from the frame before it, so recovery stops at the first zero, as it stops at the end of the
/// file (and at torn zeros, should power fail while they are written); SQLite writes its frames at
/// offsets it computes, never relative to the file's size. The zeros go only past the file's
/// current end, inside an IMMEDIATE transaction, which holds SQLite's write lock, so no writer of
/// any connection or process appends a frame meanwhile; checkpoints never write the log. They are
/// synced before returning, so the next commit's sync does not carry them. A reserve that would
/// take more than half of the filesystem's free space is not made, and one that fails midway is
/// cut back to the log's old end (only zeros past it go). SQLite keeps no locks
/// on the log file itself, so opening and closing it here takes none away (not so for the database
/// file or the `-shm` index: never do this to those).
enum WALReserve {
    /// Extends the log of `pool` to `bytes` if it is shorter; returns the bytes added.
    static func ensure(_ pool: DatabasePool, bytes: Int) throws -> Int {
        try pool.writeWithoutTransaction { db in
            // An empty transaction: it writes nothing to the log, and holds the write lock.
            try db.inCommittedTransaction { try extend(pool.path + "-wal", to: bytes) }
        }
    }

    private static func extend(_ path: String, to bytes: Int) throws -> Int {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        // No log yet: SQLite creates one at the first write, and a reserve can wait for the next start.
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw WALReserveError(path: path, errno: errno) }
        var end = Int(st.st_size)
        guard end < bytes else { return 0 }
        let start = end
        // A reserve is only a speed-up: it must never be what fills a disk others need too.
        var fs = statvfs()
        if fstatvfs(fd, &fs) == 0 {
            let free = Int(fs.f_bavail) * Int(fs.f_frsize)
            guard bytes - start <= free / 2 else { throw WALReserveError(path: path, errno: ENOSPC, free: free) }
        }
        let zeros = [UInt8](repeating: 0, count: 1 << 20)
        do {
            while end < bytes {
                let count = min(zeros.count, bytes - end)
                let written = zeros.withUnsafeBytes { pwrite(fd, $0.baseAddress, count, off_t(end)) }
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else { throw WALReserveError(path: path, errno: written == 0 ? EIO : errno) }
                end += written
            }
            guard fdatasync(fd) == 0 else { throw WALReserveError(path: path, errno: errno) }
        } catch {
            // Give back what this added (zeros past the log's end, under the write lock).
            _ = ftruncate(fd, off_t(start))
            throw error
        }
        return end - start
    }
}

struct WALReserveError: Error, CustomStringConvertible {
    let path: String
    let errno: Int32
    /// Free bytes on the log's filesystem, when the reserve was not tried for want of them.
    var free: Int? = nil
    var description: String {
        if let free { return "not reserving space in the write-ahead log \(path): it would take more than half of the \(free >> 20) MiB free" }
        return "could not reserve space in the write-ahead log \(path): \(String(cString: strerror(errno)))"
    }
}
