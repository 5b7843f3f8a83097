/// Exponential backoff with jitter, for reconnecting and restarting.
public struct SerfBackoff: Sendable, Equatable {
    /// The first delay.
    public var initial: Duration
    /// The cap.
    public var maximum: Duration
    /// Growth per attempt.
    public var multiplier: Double
    /// Fraction of each delay that is randomized, so many hosts restarting together spread out.
    public var jitter: Double

    public init(initial: Duration = .milliseconds(100), maximum: Duration = .seconds(5), multiplier: Double = 2, jitter: Double = 0.2) {
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.jitter = jitter
    }

    /// The delay before retry number `attempt` (0 for the first retry).
    public func delay(attempt: Int) -> Duration {
        var base = initial
        for _ in 0 ..< attempt where base < maximum { base = base * multiplier }
        base = min(base, maximum)
        guard jitter > 0 else { return base }
        return base * (1 - jitter + Double.random(in: 0 ... jitter))
    }
}
