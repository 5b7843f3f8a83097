import NIOPosix

/// The store's threads (the engine's thread pool) as a task executor. A session the peer opens runs
/// on them outright: when its next message arrives it resumes on a store thread and verifies and
/// commits there, instead of resuming on the cooperative pool only to hand the step to a store
/// thread (two thread wake-ups on the path of every push received, where one will do). Its waits
/// hold no thread, so the pool's threads stay free for steps.
final class StoreThreads: TaskExecutor {
    let pool: NIOThreadPool

    init(pool: NIOThreadPool) {
        self.pool = pool
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        // Run whatever the pool says: a job never run would leave its task waiting forever (a
        // pool already shut down runs the item at once, on the calling thread).
        pool.submit { _ in
            if Self.marker.currentValue == nil { Self.marker.currentValue = Self.mark }
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }

    /// Whether the calling thread is one of the store's threads (one that has run a job of this
    /// executor). A task that prefers these threads can still run elsewhere: a task started with
    /// `Task.immediate` runs on its caller's thread until it first waits, and a message already
    /// waiting does not make it wait. A session's step runs in place only here (`SessionRunner`).
    static var isCurrentThread: Bool { marker.currentValue != nil }

    private final class Mark: Sendable {}
    private static let mark = Mark()
    private static let marker = ThreadSpecificVariable<Mark>()
}
