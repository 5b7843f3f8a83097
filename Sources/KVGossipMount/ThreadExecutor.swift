import Dispatch
import Foundation
import Synchronization

/// Runs tasks that prefer it on one dedicated thread. The store's change stream is async, and
/// draining it on the shared cooperative pool would make remote changes wait whenever the host
/// program keeps that pool busy (or blocks it): watchers would see changes late, or never.
final class ThreadExecutor: TaskExecutor, @unchecked Sendable {
    private let jobs = Mutex<(queue: [UnownedJob], stopping: Bool)>(([], false))
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    init(name: String) {
        let thread = Thread { [self] in
            run()
            finished.signal()
        }
        thread.name = name
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        jobs.withLock { $0.queue.append(job) }
        wake.signal()
    }

    /// Ends the thread once the jobs already queued have run.
    func shutdown() {
        jobs.withLock { $0.stopping = true }
        wake.signal()
        finished.wait()
    }

    private func run() {
        while true {
            wake.wait()
            while let job = jobs.withLock({ $0.queue.isEmpty ? nil : $0.queue.removeFirst() }) {
                job.runSynchronously(on: asUnownedTaskExecutor())
            }
            if jobs.withLock({ $0.stopping && $0.queue.isEmpty }) { return }
        }
    }
}
