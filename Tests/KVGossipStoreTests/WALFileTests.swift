import Foundation
import Testing
@testable import KVGossipStore

/// The store's own descriptor of its write-ahead log (`WALFile`), looked up before every commit.
@Suite struct WALFileTests {
    /// A log file in a fresh directory, removed when the test ends.
    final class Log {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-walfile-\(UUID().uuidString)").path
        var database: String { directory + "/db" }
        var path: String { database + "-wal" }
        let fd: Int32

        init() throws {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            fd = open(directory + "/db-wal", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        }

        /// Writes one byte, as a commit rewrites the log.
        func write() {
            var byte: UInt8 = 1
            _ = pwrite(fd, &byte, 1, 0)
        }

        var modified: timespec {
            var st = stat()
            _ = stat(path, &st)
            return st.st_mtim
        }

        deinit {
            close(fd)
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    @Test func identityIsTheDeviceAndInodeStatReports() throws {
        let log = try Log()
        var st = stat()
        #expect(stat(log.path, &st) == 0)
        let byPath = try #require(FileIdentity(path: log.path))
        #expect(byPath.inode == UInt64(st.st_ino))
        #expect(FileIdentity(descriptor: log.fd) == byPath)
        let missing = FileIdentity(path: log.directory + "/missing")
        let code = errno
        #expect(missing == nil)
        #expect(code == ENOENT)
    }

    @Test func aReplacedLogIsReopened() throws {
        let log = try Log()
        let wal = WALFile(databasePath: log.database)
        let first = try #require(try wal.current())
        #expect(try wal.current() === first)
        #expect(rename(log.path, log.directory + "/old") == 0)
        let replacement = open(log.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        close(replacement)
        let second = try #require(try wal.current())
        #expect(second !== first)
        #expect(unlink(log.path) == 0)
        #expect(try wal.current() == nil)
    }

    /// The lookup before each commit must not mark the log's times as seen: where the filesystem
    /// keeps fine-grained times on demand, a seen time makes the next write stamp the inode anew,
    /// and every sync of the log then writes the inode's block too (why: `FileIdentity`).
    ///
    /// How it shows: a write right after a time was seen takes the precise current time, so it is
    /// at least the clock read just before it; a write that nobody looked at since the last one
    /// keeps the coarse time, which lags the clock. A plain `stat` is the control: where it does
    /// not make the write's time precise, the filesystem has coarse times only and there is
    /// nothing to check.
    @Test func lookingUpTheLogLeavesItsTimesUnseen() throws {
        let log = try Log()
        let wal = WALFile(databasePath: log.database)
        _ = try wal.current()

        /// How many of five writes, each made after `look`, took a time earlier than the clock.
        func coarseWrites(after look: () throws -> Void) rethrows -> Int {
            var coarse = 0
            for _ in 0..<5 {
                log.write()
                _ = log.modified  // seen: the next write is precise
                log.write()  // precise, and its time unseen again
                try look()
                var before = timespec()
                clock_gettime(CLOCK_REALTIME, &before)
                log.write()
                let after = log.modified
                if (after.tv_sec, after.tv_nsec) < (before.tv_sec, before.tv_nsec) { coarse += 1 }
            }
            return coarse
        }

        let afterStat = coarseWrites { _ = log.modified }
        guard afterStat == 0 else {
            // Coarse times only (a kernel before 6.13, or a filesystem without the option).
            return
        }
        #expect(try coarseWrites { _ = try wal.current() } > 0)
    }
}
