import Testing
@testable import KVGossipSync

/// The gossip engine's clock loop sleeps until its next tick and is woken sooner by events that
/// bring it nearer (`ClockDoorbell`, Docs/architecture.md §Gossip).
@Suite(.timeLimit(.minutes(1))) struct ClockDoorbellTests {
    /// A sleep long enough that a test returning at all shows the bell woke it.
    static let forever: UInt64 = 600_000

    /// Arms `bell` and starts a sleep of `milliseconds` on a task of its own; returns once the
    /// task sleeps, so a ring after it finds the sleep in progress.
    func sleeping(_ bell: ClockDoorbell, for milliseconds: UInt64 = forever) async throws -> Task<Void, Never> {
        bell.arm(deadlineMs: 1_000)
        let sleeper = Task { await bell.sleep(milliseconds: milliseconds) }
        while !bell.isSleeping { try await Task.sleep(for: .milliseconds(1)) }
        return sleeper
    }

    @Test func onlyAnEarlierTickRingsAndOnlyWhileArmed() async {
        let bell = ClockDoorbell()
        #expect(!bell.mustRing(nextMs: 1))
        bell.arm(deadlineMs: 1_000)
        #expect(bell.mustRing(nextMs: 999))
        #expect(!bell.mustRing(nextMs: 1_000))
        #expect(!bell.mustRing(nextMs: 5_000))
        #expect(!bell.mustRing(nextMs: nil))
        bell.ring()
        await bell.sleep(milliseconds: Self.forever)
        // Awake again: the loop reads the next tick itself before it sleeps.
        #expect(!bell.mustRing(nextMs: 1))
    }

    /// Rung between arming and sleeping (an event right after the loop read its next tick).
    @Test func aRingBeforeTheSleepEndsItAtOnce() async {
        let bell = ClockDoorbell()
        bell.arm(deadlineMs: 1_000)
        bell.ring()
        await bell.sleep(milliseconds: Self.forever)
    }

    @Test func aRingWakesASleepInProgress() async throws {
        let bell = ClockDoorbell()
        let sleeper = try await sleeping(bell)
        bell.ring()
        await sleeper.value
    }

    @Test func aSleepEndsAtItsTimeWithoutARing() async {
        let bell = ClockDoorbell()
        bell.arm(deadlineMs: 1_000)
        let start = ContinuousClock.now
        await bell.sleep(milliseconds: 20)
        #expect(ContinuousClock.now - start >= .milliseconds(20))
    }

    @Test func cancellingTheLoopEndsItsSleep() async throws {
        let bell = ClockDoorbell()
        let sleeper = try await sleeping(bell)
        sleeper.cancel()
        await sleeper.value
        // Cancelled before it began: it does not sleep at all.
        let cancelled = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            bell.arm(deadlineMs: 1_000)
            await bell.sleep(milliseconds: Self.forever)
        }
        await cancelled.value
    }

    /// The timer of a sleep that a ring ended early must not cut a later sleep short.
    @Test func anEarlierSleepsTimerDoesNotWakeALaterOne() async throws {
        let bell = ClockDoorbell()
        let first = try await sleeping(bell, for: 30)
        bell.ring()
        await first.value
        let second = try await sleeping(bell)
        // Well past the first sleep's 30 ms: its timer has fired by now.
        try await Task.sleep(for: .milliseconds(150))
        #expect(bell.isSleeping)
        bell.ring()
        await second.value
    }
}
