import Foundation
import KVGossipClient
import KVGossipTestSupport

struct TimedOut: Error, CustomStringConvertible {
    let description: String
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
func eventually(_ timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async rethrows -> Bool {
    try await Readiness.waitAsync(timeout: timeout, condition)
}

/// The first element of `stream` that satisfies `predicate`, or a `TimedOut` error.
func first<T: Sendable>(
    _ stream: AsyncStream<T>, within timeout: Duration = .seconds(30), where predicate: @escaping @Sendable (T) -> Bool
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask {
            for await element in stream where predicate(element) { return element }
            throw TimedOut(description: "the stream ended before a matching element")
        }
        group.addTask {
            try await Task.sleep(for: timeout)
            throw TimedOut(description: "no matching element within \(timeout)")
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// Everything a stream yields, kept for later assertions, read by a task of its own.
final class Recorder<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [T] = []
    private var task: Task<Void, Never>?

    init(_ stream: AsyncStream<T>) {
        task = Task { [weak self] in
            for await item in stream { self?.append(item) }
        }
    }

    init<S: AsyncSequence & Sendable>(sequence: S) where S.Element == T {
        task = Task { [weak self] in
            do {
                for try await item in sequence { self?.append(item) }
            } catch {}
        }
    }

    private func append(_ item: T) { lock.withLock { items.append(item) } }
    var all: [T] { lock.withLock { items } }
    func cancel() { task?.cancel() }
    deinit { task?.cancel() }
}

/// Test clients reconnect fast so a restarted agent is found within a fraction of a second.
func testOptions(cullDelay: Duration = .seconds(5)) -> KVClientOptions {
    var options = KVClientOptions()
    options.cullDelay = cullDelay
    options.backoff = Backoff(initial: .milliseconds(50), maximum: .milliseconds(400), stableAfter: .milliseconds(500))
    options.callTimeout = .seconds(10)
    options.logger.logLevel = .notice
    return options
}
