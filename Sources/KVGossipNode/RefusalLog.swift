import Foundation
import KVGossipCore
import Logging
import Synchronization

/// Logs refusals at a bounded rate: the first few of each reason per minute in full, then one line
/// per minute saying how many more there were. A peer (or a stranger) sending junk must not be
/// able to fill the disk or drown the log; every refusal is still counted (`Node.noteRefusal`,
/// `/metrics`).
public final class RefusalLog: Sendable {
    private struct Window {
        var started: UInt64 = 0
        var logged = 0
        var suppressed = 0
    }

    private let logger: Logger
    private let perMinute: Int
    private let clock: @Sendable () -> UInt64
    private let windows = Mutex<[String: Window]>([:])

    public init(logger: Logger, perMinute: Int = 10, clock: @escaping @Sendable () -> UInt64 = { UInt64(Date().timeIntervalSince1970 * 1000) }) {
        self.logger = logger
        self.perMinute = perMinute
        self.clock = clock
    }

    public func note(_ refusal: Refusal, _ what: String, _ metadata: [String: String]) {
        var meta = ["detail": refusal.detail]
        for (k, v) in metadata { meta[k] = v }
        note(reason: refusal.reason.rawValue, what, meta)
    }

    /// The same for a closing that is not a refusal of the peer (a link closed to make room),
    /// under a reason of its own.
    public func note(reason: String, _ what: String, _ metadata: [String: String]) {
        let now = clock()
        let (log, summary) = windows.withLock { all -> (Bool, Int) in
            var w = all[reason] ?? Window(started: now)
            var summary = 0
            if now >= w.started + 60_000 {
                summary = w.suppressed
                w = Window(started: now)
            }
            let log = w.logged < perMinute
            if log { w.logged += 1 } else { w.suppressed += 1 }
            all[reason] = w
            return (log, summary)
        }
        if summary > 0 {
            logger.warning("more refusals were not logged", metadata: ["reason": "\(reason)", "count": "\(summary)", "in": "the last minute"])
        }
        guard log else { return }
        var meta: Logger.Metadata = ["reason": "\(reason)"]
        for (k, v) in metadata { meta[k] = "\(v)" }
        logger.notice("\(what)", metadata: meta)
    }
}
