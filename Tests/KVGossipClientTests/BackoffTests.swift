import KVGossipClient
import Testing

@Suite struct BackoffTests {
    let backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(5), multiplier: 2, jitter: 0.5)

    @Test func noWaitBeforeTheFirstAttempt() {
        #expect(backoff.delay(afterFailures: 0, random: 1) == .zero)
    }

    @Test func doublesUpToTheCap() {
        // random 0 = no jitter taken off: the full delay.
        let delays = (1...10).map { backoff.delay(afterFailures: $0, random: 0) }
        #expect(delays.prefix(4) == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800)])
        #expect(delays.last == .seconds(5))
        #expect(backoff.delay(afterFailures: 10_000, random: 0) == .seconds(5), "a long outage neither overflows nor exceeds the cap")
    }

    @Test func jitterTakesOffAtMostTheConfiguredFraction() {
        #expect(backoff.delay(afterFailures: 3, random: 1) == .milliseconds(200))
        for _ in 0..<100 {
            let d = backoff.delay(afterFailures: 3)
            #expect(d >= .milliseconds(200) && d <= .milliseconds(400))
        }
    }
}
