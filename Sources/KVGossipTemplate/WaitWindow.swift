/// When to render after changes: a debounce with a deadline (Docs/templates.md §The wait window).
///
/// The first change opens a window. Each later change moves the render to `quiet` after it, but
/// never past `limit` after the change that opened the window. A burst therefore renders once,
/// after it settles; a stream of changes that never settles still renders every `limit`. Time is
/// passed in, never read here, so the rule is tested without waiting.
public struct WaitWindow: Sendable, Equatable {
    /// How long the tree must stay quiet before a render.
    public let quiet: Duration
    /// The longest a change waits for its render, however busy the tree is.
    public let limit: Duration
    private var opened: ContinuousClock.Instant?
    private var latest: ContinuousClock.Instant?

    /// What the renderer should do now.
    public enum Decision: Sendable, Equatable {
        /// No change waits for a render.
        case idle
        /// Render now; call ``close()`` when the snapshot for it has been taken.
        case renderNow
        /// Ask again at this moment (or when another change comes).
        case waitUntil(ContinuousClock.Instant)
    }

    /// A limit shorter than `quiet` is raised to `quiet`.
    public init(quiet: Duration, limit: Duration) {
        precondition(quiet >= .zero, "a wait cannot be negative")
        self.quiet = quiet
        self.limit = max(limit, quiet)
    }

    /// A change arrived at `now`.
    public mutating func noteChange(at now: ContinuousClock.Instant) {
        if opened == nil { opened = now }
        latest = now
    }

    /// Whether a change is waiting for a render.
    public var isOpen: Bool { opened != nil }

    public func decision(at now: ContinuousClock.Instant) -> Decision {
        guard let opened, let latest else { return .idle }
        let due = min(latest + quiet, opened + limit)
        return now >= due ? .renderNow : .waitUntil(due)
    }

    /// The changes noted so far are being rendered; the next change opens a new window. A change
    /// noted after this call is rendered again, even if it arrived while the render ran.
    public mutating func close() {
        opened = nil
        latest = nil
    }

    /// Reads `MIN[:MAX]`, each a number with `ms`, `s` or `m` (`100ms:2s`, `250ms`, `0s`). Without MAX
    /// the limit is four times MIN, and at least MIN.
    public static func parse(_ text: String) throws(TemplateConfigError) -> WaitWindow {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let quiet = duration(parts[0]) else {
            throw TemplateConfigError("wait: expected MIN[:MAX] such as 100ms:2s, got \"\(text)\"")
        }
        guard parts.count == 2 else { return WaitWindow(quiet: quiet, limit: quiet * 4) }
        guard let limit = duration(parts[1]) else { throw TemplateConfigError("wait: cannot read MAX in \"\(text)\"") }
        guard limit >= quiet else { throw TemplateConfigError("wait: MAX (\(parts[1])) is shorter than MIN (\(parts[0]))") }
        return WaitWindow(quiet: quiet, limit: limit)
    }

    /// `250ms`, `2s`, `1m`; at most an hour, so nothing overflows and no typo waits for days.
    public static func duration(_ text: Substring) -> Duration? {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000)]
        for (unit, scale) in units where text.hasSuffix(unit) {
            guard let n = Int64(text.dropLast(unit.count)), n >= 0, n <= 3_600_000 / scale else { return nil }
            return .milliseconds(n * scale)
        }
        return nil
    }
}
