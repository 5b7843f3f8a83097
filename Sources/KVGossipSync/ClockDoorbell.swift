import Dispatch
import Synchronization

/// Lets the gossip engine's clock loop sleep until its next tick however far off that is, and
/// wakes it sooner when an event brings the next tick nearer (a commit's announcement, a repair).
///
/// Why: the loop used to sleep 100 ms at most and look again, so that an event's new deadline was
/// met at most 100 ms late; that woke an idle agent ten times a second for nothing. Now the loop
/// arms the bell with the deadline it sleeps to, and an event whose next tick comes before that
/// deadline rings it. Arming happens under the same lock as the loop's reading of the next tick,
/// and events read their new next tick under that lock too (`GossipEngine.handle`): an event
/// either came before the loop's reading, which then includes it, or sees the armed deadline.
final class ClockDoorbell: Sendable {
    private struct State {
        /// The sleep in progress, if the loop has started waiting.
        var sleeper: CheckedContinuation<Void, Never>?
        /// Rung (or cancelled) since the bell was armed: the next wait returns at once.
        var rung = false
        /// Counts sleeps, so a timer left from an earlier sleep wakes no later one.
        var generation: UInt64 = 0
    }

    private let state = Mutex(State())
    /// The deadline the loop sleeps to, or 0 while it is not sleeping (so nothing rings).
    private let armedMs = Atomic<UInt64>(0)

    /// Whether a sleep is in progress (for tests).
    var isSleeping: Bool { state.withLock { $0.sleeper != nil } }

    /// Arms the bell for a sleep to `deadlineMs`; call it under the lock events read the next
    /// tick under, then `sleep`.
    func arm(deadlineMs: UInt64) {
        state.withLock {
            $0.rung = false
            $0.generation &+= 1
        }
        armedMs.store(deadlineMs, ordering: .sequentiallyConsistent)
    }

    /// Whether an event whose next tick is `nextMs` must wake the loop.
    func mustRing(nextMs: UInt64?) -> Bool {
        guard let nextMs else { return false }
        return nextMs < armedMs.load(ordering: .sequentiallyConsistent)
    }

    /// Wakes the sleep in progress, or makes the armed one return at once.
    func ring() {
        state.withLock { state in
            state.rung = true
            return state.sleeper.take()
        }?.resume()
    }

    /// Sleeps for `milliseconds` unless rung first (or the task is cancelled), then disarms.
    func sleep(milliseconds: UInt64) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (sleeper: CheckedContinuation<Void, Never>) in
                let generation = state.withLock { state -> UInt64? in
                    if state.rung { return nil }
                    state.sleeper = sleeper
                    return state.generation
                }
                guard let generation else { return sleeper.resume() }
                let delay = DispatchTimeInterval.milliseconds(Int(min(milliseconds, UInt64(Int32.max))))
                DispatchQueue.global().asyncAfter(deadline: .now() + delay) { [self] in
                    state.withLock { $0.generation == generation ? $0.sleeper.take() : nil }?.resume()
                }
            }
        } onCancel: {
            ring()
        }
        armedMs.store(0, ordering: .sequentiallyConsistent)
    }
}
