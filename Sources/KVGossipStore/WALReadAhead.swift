import Foundation
import Synchronization

/// When to read the write-ahead log ahead of the writer, and which bytes: pure, so the rule is
/// tested without a file.
///
/// Why: a log frame is a 24-byte header and a page (4,120 bytes for 4 KB pages), so frames do not
/// line up with the kernel's pages and every frame written covers part of a page at each end. A
/// page the kernel has dropped from its cache (under memory pressure, or a page-out of idle pages)
/// must then be read from disk before the write can change part of it, inside the commit and
/// before its sync. SQLite rewrites its log in place once a checkpoint has caught up (and the
/// agent reserves it ahead, `WALReserve`), so the pages past the last frame are old pages of the
/// file, often dropped. Asking for them ahead of the commits that will write them moves those
/// reads out of the commits (Docs/architecture.md §Durability).
struct WALReadAheadPlan: Sendable, Equatable {
    /// The log's header, before the first frame.
    static let headerBytes = 32
    /// The default of `window`.
    static let defaultWindow = 1 << 20
    /// What a commit of a record or two writes, about eight frames: the row's leaf, index pages,
    /// summary nodes and the metadata page.
    static let commitBytes = 32 << 10

    /// A frame's bytes: its 24-byte header and one database page.
    let frameBytes: Int
    /// How much of the log is asked for after a commit.
    let window: Int
    /// Where the last window asked for starts; nil before the first.
    private(set) var windowStart: Int?
    /// Where the next frame goes, as of the last commit; nil before the first.
    private(set) var nextFrame: Int?

    init(pageSize: Int, window: Int = defaultWindow) {
        frameBytes = pageSize + 24
        self.window = window
    }

    /// After a commit that left `frames` frames in the log (SQLite's WAL hook): the range to ask
    /// for, or nil. The next frame goes right after the last one; a new window is asked for once
    /// the writer has used half of the last one (so the rest of it covers the next commits while
    /// the new one is read), or when the log started over from its top.
    mutating func afterCommit(frames: Int32) -> Range<Int>? {
        let next = Self.headerBytes + Int(max(frames, 0)) * frameBytes
        nextFrame = next
        if let start = windowStart, next >= start, next - start < window / 2 { return nil }
        windowStart = next
        return next..<(next + window)
    }

    /// As a commit of a record or two begins: the range it will write, from where the last commit
    /// left the log. A log idle for long enough may have lost even the window read ahead after
    /// its last commit; asked for before the record's checks and the transaction's statements, the
    /// reads run beside them.
    func beforeCommit() -> Range<Int>? {
        nextFrame.map { $0..<($0 + Self.commitBytes) }
    }
}

/// Reads the log ahead of the writer (`WALReadAheadPlan` says when and which range) with
/// `posix_fadvise(WILLNEED)`, which starts the reads and returns without waiting for them. It
/// runs on the writer's thread from the checkpointer's WAL hook after a commit (about once per
/// half a window of frames), and on the caller's thread as a mint or an apply of pushed records
/// begins (a lookup when the pages are cached). Only a speed-up: a log that cannot be opened or
/// advised is read inside the commits, as without it, and a failed request is not retried before
/// the writer has used half a window (it fails only when the log is gone or the filesystem takes
/// no advice, where asking at every commit would not help).
final class WALReadAhead: Sendable {
    /// Linux reads at most the larger of the device's largest transfer and its read-ahead setting
    /// per WILLNEED request (`force_page_cache_ra`), 128 KB on many disks, and returns 0 all the
    /// same: ranges are asked for in pieces of this size.
    static let requestBytes = 128 << 10

    private let log: WALFile
    private let plan: Mutex<WALReadAheadPlan>
    private let afterCount = Atomic<Int>(0)
    private let beforeCount = Atomic<Int>(0)

    init(databasePath: String, pageSize: Int, window: Int = WALReadAheadPlan.defaultWindow) {
        log = WALFile(databasePath: databasePath)
        plan = Mutex(WALReadAheadPlan(pageSize: pageSize, window: window))
    }

    /// Windows asked for after commits (for tests).
    var advisedAfterCommits: Int { afterCount.load(ordering: .relaxed) }
    /// Ranges asked for as commits began (for tests).
    var advisedBeforeCommits: Int { beforeCount.load(ordering: .relaxed) }
    /// The window the plan chose last, asked for or not (for tests).
    var lastWindow: Range<Int>? { plan.withLock { plan in plan.windowStart.map { $0..<($0 + plan.window) } } }

    /// After a commit that left `frames` frames in the log.
    func afterCommit(frames: Int32) {
        guard let range = plan.withLock({ $0.afterCommit(frames: frames) }), advise(range) else { return }
        afterCount.add(1, ordering: .relaxed)
    }

    /// As a commit of a record or two begins (a mint, an apply of pushed records), before its checks.
    func beforeCommit() {
        guard let range = plan.withLock({ $0.beforeCommit() }), advise(range) else { return }
        beforeCount.add(1, ordering: .relaxed)
    }

    private func advise(_ range: Range<Int>) -> Bool {
        guard let opened = try? log.current() else { return false }
        return withExtendedLifetime(opened) {
            for start in stride(from: range.lowerBound, to: range.upperBound, by: Self.requestBytes) {
                let count = min(Self.requestBytes, range.upperBound - start)
                guard posix_fadvise(opened.fd, off_t(start), off_t(count), POSIX_FADV_WILLNEED) == 0 else { return false }
            }
            return true
        }
    }
}
