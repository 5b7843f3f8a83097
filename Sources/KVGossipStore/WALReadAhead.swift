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
/// file, often dropped. Asking for them after a commit moves those reads out of the next ones
/// (Docs/architecture.md §Durability).
struct WALReadAheadPlan: Sendable, Equatable {
    /// The log's header, before the first frame.
    static let headerBytes = 32
    /// The default stretch asked for at a time.
    static let defaultWindow = 1 << 20

    /// A frame's bytes: its 24-byte header and one database page.
    let frameBytes: Int
    /// How much of the log is asked for at a time.
    let window: Int
    /// Where the last stretch asked for starts; nil before the first.
    private(set) var advisedFrom: Int?

    init(pageSize: Int, window: Int = defaultWindow) {
        frameBytes = pageSize + 24
        self.window = window
    }

    /// Called after each commit with the number of frames now in the log (SQLite's WAL hook):
    /// the bytes to ask for, or nil. The next frame goes right after the last one; a new stretch
    /// is asked for once the writer has used half of the last one (so the rest of it covers the
    /// next commits while the new stretch is read), or when the log started over from its top.
    mutating func afterCommit(frames: Int32) -> Range<Int>? {
        let next = Self.headerBytes + Int(max(frames, 0)) * frameBytes
        nextFrame = next
        if let from = advisedFrom, next >= from, next - from < window / 2 { return nil }
        advisedFrom = next
        return next..<(next + window)
    }

    /// Where the next frame goes, as of the last commit; nil before the first.
    private(set) var nextFrame: Int?

    /// The bytes the next commit of a record or two will write, to ask for as it begins: a log
    /// idle for long enough may have lost even the stretch read ahead after its last commit, and
    /// asking before the checks and the transaction's statements lets the reads run beside them.
    /// Pages already cached make this a lookup.
    func aheadOfNextCommit() -> Range<Int>? {
        nextFrame.map { $0..<($0 + Self.nextCommitBytes) }
    }

    /// About eight frames: a single record's commit writes its row's leaf, index pages, summary
    /// nodes and the metadata page.
    static let nextCommitBytes = 32 << 10
}

/// Reads the log ahead of the writer (`WALReadAheadPlan` says when and where) with
/// `posix_fadvise(WILLNEED)`, which starts the reads and returns without waiting for them. It
/// runs on the writer's thread from the checkpointer's WAL hook, after a commit, about once per
/// half a window of frames written. Only a speed-up: a log that cannot be opened or advised is
/// left to be read inside the commits, as before.
final class WALReadAhead: Sendable {
    private let log: WALFile
    private let plan: Mutex<WALReadAheadPlan>
    /// Stretches of the log asked for (for tests).
    var advised: Int { advisedCount.load(ordering: .relaxed) }
    private let advisedCount = Atomic<Int>(0)
    /// Stretches asked for as a commit began (for tests).
    var advisedBeforeCommits: Int { advisedBeforeCount.load(ordering: .relaxed) }
    private let advisedBeforeCount = Atomic<Int>(0)
    /// The stretch the plan last chose (for tests).
    var lastAdvised: Range<Int>? { plan.withLock { plan in plan.advisedFrom.map { $0..<($0 + plan.window) } } }

    init(databasePath: String, pageSize: Int, window: Int = WALReadAheadPlan.defaultWindow) {
        log = WALFile(databasePath: databasePath)
        plan = Mutex(WALReadAheadPlan(pageSize: pageSize, window: window))
    }

    /// After a commit that left `frames` frames in the log.
    func committed(frames: Int32) {
        guard let range = plan.withLock({ $0.afterCommit(frames: frames) }), advise(range) else { return }
        advisedCount.add(1, ordering: .relaxed)
    }

    /// As a commit of a record or two begins (a mint, an apply of pushed records), before its
    /// checks: the stretch it will write.
    func beforeCommit() {
        guard let range = plan.withLock({ $0.aheadOfNextCommit() }), advise(range) else { return }
        advisedBeforeCount.add(1, ordering: .relaxed)
    }

    private func advise(_ range: Range<Int>) -> Bool {
        guard let opened = try? log.current() else { return false }
        return posix_fadvise(opened.fd, off_t(range.lowerBound), off_t(range.count), POSIX_FADV_WILLNEED) == 0
    }
}
