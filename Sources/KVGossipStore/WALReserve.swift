import Foundation
import GRDB

/// Keeps the write-ahead log at least a given length by writing zeros past its end, so commits
/// rewrite space the file already has instead of growing it.
///
/// Why: a commit's sync costs more when it grows the log. Growing changes the file's size, so
/// `fdatasync` must write the file's metadata as well as its data (on this project's test machine,
/// ext4: a 4 KB append synced in 183–257 µs at the median, a 4 KB overwrite in 101–127 µs; three
/// agents writing back to back answered 15 % sooner with their logs reserved). SQLite already
/// rewrites its log in place once a checkpoint has caught up with it (it starts over from the top
/// and never shrinks the file while the database is open), but a new log, or one that has not yet
/// reached its first checkpoint, grows at every commit: for an agent that sees a few writes an
/// hour, that is every commit for months.
///
/// Why it is safe: a frame counts only with the log header's salt and a checksum that runs on
/// from the frame before it, so recovery stops at the first zero, as it stops at the end of the
/// file; SQLite writes its frames at offsets it computes, never relative to the file's size. The
/// zeros go only past the file's current end and only while this process holds the writer, so no
/// frame is ever overwritten. They are synced before returning, so the next commit's sync does not
/// carry them.
enum WALReserve {
    /// Extends the log of `pool` to `bytes` if it is shorter; returns the bytes added. Runs on
    /// the pool's writer, so no commit is in progress meanwhile.
    static func ensure(_ pool: DatabasePool, bytes: Int) throws -> Int {
        try pool.writeWithoutTransaction { _ in
            let path = pool.path + "-wal"
            let fd = open(path, O_WRONLY | O_CLOEXEC)
            // No log yet: SQLite creates one at the first write, and a reserve can wait for the next start.
            guard fd >= 0 else { return 0 }
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0 else { throw WALReserveError(path: path, errno: errno) }
            var end = Int(st.st_size)
            guard end < bytes else { return 0 }
            let start = end
            let zeros = [UInt8](repeating: 0, count: 1 << 20)
            while end < bytes {
                let count = min(zeros.count, bytes - end)
                let written = zeros.withUnsafeBytes { pwrite(fd, $0.baseAddress, count, off_t(end)) }
                guard written > 0 else { throw WALReserveError(path: path, errno: errno) }
                end += written
            }
            guard fdatasync(fd) == 0 else { throw WALReserveError(path: path, errno: errno) }
            return end - start
        }
    }
}

struct WALReserveError: Error, CustomStringConvertible {
    let path: String
    let errno: Int32
    var description: String { "could not reserve space in the write-ahead log \(path): \(String(cString: strerror(errno)))" }
}
