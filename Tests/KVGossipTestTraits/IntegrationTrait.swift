import Foundation
import Testing

/// Marks tests that start real processes, mounts or sockets. Two things follow:
///
/// - They take a slot from one budget shared by every test target in the process
///   (`KVGOSSIP_TEST_SLOTS`, default 2), so a 2-core machine runs a bounded number of agents,
///   Serf processes and mounts at once however many suites Swift Testing starts in parallel.
/// - Each one runs on threads of its own rather than on Swift's cooperative pool. Integration
///   tests wait for processes and read pipes with blocking calls; on the cooperative pool (two
///   threads on two cores) two such tests starved every other task in the process, so unrelated
///   tests measured 50 s waits and readiness deadlines expired before their first check.
///
/// Apply it to a suite (it is recursive) or to one test: `@Suite(.integration)`.
public struct IntegrationTrait: TestTrait, SuiteTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        try await IntegrationSlots.shared.withSlot {
            let threads = TestThreadPool(name: "kvg-test", threads: 2)
            defer { threads.shutdown() }
            try await withTaskExecutorPreference(threads) { try await function() }
        }
    }
}

extension Trait where Self == IntegrationTrait {
    /// See `IntegrationTrait`.
    public static var integration: Self { IntegrationTrait() }
}

/// A counting semaphore for async code: first come, first served.
public actor IntegrationSlots {
    public static let shared = IntegrationSlots(
        count: max(1, Int(ProcessInfo.processInfo.environment["KVGOSSIP_TEST_SLOTS"] ?? "") ?? 2))

    private var free: Int
    private var waiting: [CheckedContinuation<Void, Never>] = []

    public init(count: Int) {
        precondition(count > 0, "a semaphore needs at least one slot")
        free = count
    }

    public func withSlot<T: Sendable>(_ body: @Sendable () async throws -> T) async rethrows -> T {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        if free > 0 {
            free -= 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    private func release() {
        if waiting.isEmpty {
            free += 1
        } else {
            // The slot passes straight to the longest waiter.
            waiting.removeFirst().resume()
        }
    }
}

/// A task executor with a few dedicated threads. A test body that blocks one of them (waiting for
/// a process, reading a pipe) leaves the other for its own child tasks and the cooperative pool
/// for everyone else.
final class TestThreadPool: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [UnownedJob] = []
    private var stopped = false

    init(name: String, threads: Int) {
        for i in 0..<threads {
            let thread = Thread { [self] in work() }
            thread.name = "\(name)-\(i)"
            thread.start()
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        defer { condition.unlock() }
        guard !stopped else {
            // A task that outlived its test (an unstructured one that inherited the preference)
            // still runs, on a thread borrowed for the purpose.
            Thread.detachNewThread { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
            return
        }
        queue.append(job)
        condition.signal()
    }

    /// Lets the threads finish what is queued, then end.
    func shutdown() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    private func work() {
        while true {
            condition.lock()
            while queue.isEmpty && !stopped { condition.wait() }
            guard !queue.isEmpty else {
                condition.unlock()
                return
            }
            let job = queue.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
