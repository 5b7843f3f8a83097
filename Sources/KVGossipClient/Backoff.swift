/// Capped exponential backoff with jitter for reconnecting.
///
/// The first attempt after a healthy connection drops is immediate (and goes to the next endpoint);
/// each further consecutive failure waits longer, up to `maximum`. Jitter spreads many clients
/// that lost the same agent so they do not all reconnect in the same instant.
public struct Backoff: Sendable, Hashable {
    /// The wait after the first failed attempt.
    public var initial: Duration
    /// The longest wait between attempts.
    public var maximum: Duration
    /// Growth per consecutive failure.
    public var multiplier: Double
    /// The fraction (0…1) of each wait that is random: a wait of `d` becomes a uniform pick in
    /// `d·(1−jitter) … d`.
    public var jitter: Double
    /// A connection that lived at least this long counts as healthy and resets the failure count;
    /// one that dies sooner keeps backing off, so an agent that accepts and then drops every
    /// connection is not hammered.
    public var stableAfter: Duration

    /// Defaults: 100 ms doubling to 5 s, half of each wait random, healthy after 2 s.
    public init(
        initial: Duration = .milliseconds(100), maximum: Duration = .seconds(5), multiplier: Double = 2,
        jitter: Double = 0.5, stableAfter: Duration = .seconds(2)
    ) {
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.jitter = jitter
        self.stableAfter = stableAfter
    }

    /// The wait before the next attempt after `failures` consecutive failures (0: none).
    /// `random` is a uniform pick in 0…1, injectable for tests.
    public func delay(afterFailures failures: Int, random: Double = Double.random(in: 0...1)) -> Duration {
        guard failures > 0 else { return .zero }
        let cap = maximum.seconds
        // Stop multiplying once over the cap, so a long outage cannot overflow to infinity.
        var base = initial.seconds
        for _ in 1..<failures where base < cap { base *= multiplier }
        base = min(base, cap)
        let spread = min(max(jitter, 0), 1)
        return .seconds(base * (1 - spread * min(max(random, 0), 1)))
    }
}

extension Duration {
    /// The duration in seconds as a floating-point number.
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}
