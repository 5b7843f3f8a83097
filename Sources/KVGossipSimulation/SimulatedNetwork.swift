import KVGossipCore

/// How messages travel between simulated nodes. Links are TCP, so a lost segment is not a lost
/// message: it arrives after a retransmission timeout (Linux's minimum RTO is 200 ms, doubling on
/// each further loss). A partition is different: nothing crosses it, and a sender learns that
/// only when its dial or write times out.
public struct NetworkModel: Sendable {
    /// One-way latency of a message, drawn uniformly from this range, in milliseconds.
    public var latencyMs: ClosedRange<Double> = 1...5
    /// Probability that a transmission is lost (then retransmitted).
    public var loss: Double = 0
    /// The first retransmission timeout, in milliseconds.
    public var retransmitMs: Double = 200
    /// How long a sender waits before a message to an unreachable node counts as failed.
    public var unreachableAfterMs: Double = 1000

    public init() {}

    /// The delay of one message, in microseconds.
    func delay(using random: inout SplitMix64) -> UInt64 {
        var ms = Double.random(in: latencyMs, using: &random)
        var rto = retransmitMs
        while loss > 0, Double.random(in: 0..<1, using: &random) < loss {
            ms += rto
            rto *= 2
        }
        return UInt64(ms * 1000)
    }
}
