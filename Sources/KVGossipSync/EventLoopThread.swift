import NIOCore

/// A connection's event loop as a task executor. An established link reads on it: a frame the
/// loop has just read resumes the link's reader in the same turn of the loop, where it is opened,
/// decoded and routed, instead of waking a thread of the cooperative pool to do that (a hand-off on
/// every message a link receives). The reader's work per frame is small and bounded by the frame
/// limit: decrypting, decoding and handing the message to its session; a session's own work runs
/// on the store's threads (`StoreThreads`).
final class EventLoopThread: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        // From the loop's own thread this only appends to its queue of tasks: no wake-up.
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
