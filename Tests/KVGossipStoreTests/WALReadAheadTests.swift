import Foundation
import GRDB
import KVGossipCore
import KVGossipTestSupport
import Testing
@testable import KVGossipStore

/// Reading the log ahead of the writer (`WALReadAhead`): the rule on its own, and the pages
/// coming back into the kernel's cache after it dropped them.
@Suite struct WALReadAheadTests {
    static let frame = 4_096 + 24

    @Test func theFirstCommitAsksForAWindowFromTheNextFrame() {
        var plan = WALReadAheadPlan(pageSize: 4_096, window: 1 << 20)
        #expect(plan.afterCommit(frames: 3) == (32 + 3 * Self.frame)..<(32 + 3 * Self.frame + (1 << 20)))
    }

    @Test func commitsInTheFirstHalfOfTheWindowAskForNothingMore() {
        var plan = WALReadAheadPlan(pageSize: 4_096, window: 1 << 20)
        _ = plan.afterCommit(frames: 3)
        let halfInFrames = Int32((1 << 19) / Self.frame)  // 127 frames: 523,240 bytes
        for frames in Int32(4)...(3 + halfInFrames) {
            #expect(plan.afterCommit(frames: frames) == nil, "\(frames) frames")
        }
        let next = 32 + Int(4 + halfInFrames) * Self.frame
        #expect(plan.afterCommit(frames: 4 + halfInFrames) == next..<(next + (1 << 20)))
    }

    @Test func aCommitPastTheWindowAsksAgainFromItsEnd() {
        var plan = WALReadAheadPlan(pageSize: 4_096, window: 1 << 20)
        _ = plan.afterCommit(frames: 1)
        // A batch of a thousand records writes several windows at once.
        #expect(plan.afterCommit(frames: 2_000) == (32 + 2_000 * Self.frame)..<(32 + 2_000 * Self.frame + (1 << 20)))
    }

    /// After a checkpoint caught up, SQLite starts the log over from its top: the next frames go
    /// there, before the window asked for last.
    @Test func aLogStartedOverIsAskedForFromItsTop() {
        var plan = WALReadAheadPlan(pageSize: 4_096, window: 1 << 20)
        _ = plan.afterCommit(frames: 5_000)
        #expect(plan.afterCommit(frames: 2) == (32 + 2 * Self.frame)..<(32 + 2 * Self.frame + (1 << 20)))
        #expect(plan.afterCommit(frames: 4) == nil)
    }

    /// As a commit begins, the range it will write: from where the last commit left the log.
    @Test func aCommitAboutToBeginAsksForWhereItWillWrite() {
        var plan = WALReadAheadPlan(pageSize: 4_096, window: 1 << 20)
        #expect(plan.beforeCommit() == nil, "nothing is known before the first commit")
        _ = plan.afterCommit(frames: 3)
        _ = plan.afterCommit(frames: 9)
        let next = 32 + 9 * Self.frame
        #expect(plan.beforeCommit() == next..<(next + WALReadAheadPlan.commitBytes))
    }

    @Test func otherPageSizesMakeOtherFrames() {
        var plan = WALReadAheadPlan(pageSize: 8_192, window: 1 << 20)
        #expect(plan.afterCommit(frames: 2)?.lowerBound == 32 + 2 * (8_192 + 24))
    }

    /// The kernel drops the log's pages (as a page-out of idle memory does); commits that reach
    /// the middle of the last window asked for ask for the next one, and its pages come back into
    /// the cache without any commit having written there. Without the read-ahead nothing reads
    /// them until a commit must, one page at a time inside it.
    @Test(.enabled(if: PageCache.dropsPages(in: FileManager.default.temporaryDirectory.path), "tmpfs keeps every page"))
    func droppedPagesAheadOfTheWriterAreReadBackAfterACommit() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-walreadahead-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pool = try WALCheckpointerTests.pool(directory)
        let log = "\(directory)/db.sqlite-wal"
        _ = try WALReserve.ensure(pool, bytes: 8 << 20)
        let checkpointer = try WALCheckpointer(
            path: "\(directory)/db.sqlite", wakeAtPages: 100_000, writerCheckpointsAtPages: 200_000, readAheadWindow: 512 << 10)
        try checkpointer.attach(to: pool)
        defer { checkpointer.detach(from: pool) }
        let readAhead = try #require(checkpointer.readAhead)

        try WALCheckpointerTests.fill(pool, rows: 0..<5)
        #expect(readAhead.advisedAfterCommits == 1)
        try PageCache.drop(log)
        #expect(try PageCache.residentPages(log, (6 << 20)..<(7 << 20)) == 0, "the filesystem let the log's pages go")
        let asked = readAhead.advisedAfterCommits
        var rows = 5
        while readAhead.advisedAfterCommits == asked, rows < 1_000 {
            try WALCheckpointerTests.fill(pool, rows: rows..<(rows + 1))
            rows += 1
        }
        let range = try #require(readAhead.lastWindow)
        #expect(range.upperBound < 8 << 20, "inside the reserve")
        // The reads were started, not waited for: wait for the pages, not for a time.
        #expect(Readiness.wait(timeout: 10) { (try? PageCache.residentPages(log, range)) == PageCache.pages(range) })
    }

    /// A mint, and an apply of a pushed record, ask for the range they will write as they
    /// begin; a sync session's large batch does not (its own commits read ahead after them).
    @Test func mintsAndPushedRecordsAskAsTheyBegin() throws {
        let t = try TempStore()
        let readAhead = try #require(t.store.checkpointer?.readAhead)
        _ = try t.store.mint(key: Key("/a"), value: Array("1".utf8), signer: StoreFixture.root, pool: [])
        #expect(readAhead.advisedBeforeCommits == 0, "nothing is known of the log before its first commit")
        _ = try t.store.mint(key: Key("/a"), value: Array("2".utf8), signer: StoreFixture.root, pool: [])
        #expect(readAhead.advisedBeforeCommits == 1)
        _ = try t.store.apply(StoreFixture.record("/b", "pushed"))
        #expect(readAhead.advisedBeforeCommits == 2)
        let batch = (0..<Store.spreadBatchRecords).map { StoreFixture.record("/batch/\($0)", "v") }
        _ = try t.store.apply(batch)
        #expect(readAhead.advisedBeforeCommits == 2)
    }
}

/// What of a file the kernel holds in its page cache.
enum PageCache {
    static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// Whether files in `directory` can lose their pages to reclaim: not on tmpfs, whose pages are
    /// the files themselves (it ignores `POSIX_FADV_DONTNEED` and `WILLNEED`). Tried on a file.
    static func dropsPages(in directory: String) -> Bool {
        let path = "\(directory)/kvg-pagecache-\(UUID().uuidString)"
        defer { unlink(path) }
        guard FileManager.default.createFile(atPath: path, contents: Data(count: 64 << 10)), (try? drop(path)) != nil else { return false }
        return (try? residentPages(path, 0..<(64 << 10))) == 0
    }

    /// Drops the file's clean pages, as reclaim or a page-out of idle memory does.
    static func drop(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        _ = fdatasync(fd)
        let rc = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
        guard rc == 0 else { throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EIO) }
    }

    /// The pages that overlap `range`.
    static func pages(_ range: Range<Int>) -> Int {
        (range.upperBound + pageSize - 1) / pageSize - range.lowerBound / pageSize
    }

    /// How many pages overlapping `range` of the file are in the page cache (`mincore` on a
    /// read-only mapping, which reads nothing).
    static func residentPages(_ path: String, _ range: Range<Int>) throws -> Int {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        let start = range.lowerBound / pageSize * pageSize
        let length = pages(range) * pageSize
        guard let map = mmap(nil, length, PROT_READ, MAP_SHARED, fd, off_t(start)), map != MAP_FAILED else {
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        defer { munmap(map, length) }
        var vector = [UInt8](repeating: 0, count: pages(range))
        guard mincore(map, length, &vector) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        return vector.reduce(0) { $0 + Int($1 & 1) }
    }
}
