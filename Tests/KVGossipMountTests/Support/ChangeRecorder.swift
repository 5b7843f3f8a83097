import Foundation
import KVGossipCore
import KVGossipStore
import Synchronization
@testable import KVGossipMount

/// Every record the store commits during a test, to check that one edit made exactly one record.
final class ChangeRecorder: Sendable {
    private let records = Locked<[Record]>([])
    private let task = Locked<Task<Void, Never>?>(nil)
    /// Not the cooperative pool: the tests block it while programs run.
    private let executor = ThreadExecutor(name: "test-recorder")
    private let done = DispatchSemaphore(value: 0)

    init(_ store: Store) {
        let stream = store.changes()
        let t = Task(executorPreference: executor) { [records, done] in
            for await change in stream {
                if case .record(let record, _) = change { records.withLock { $0.append(record) } }
            }
            done.signal()
        }
        task.withLock { $0 = t }
    }

    var count: Int { records.withLock { $0.count } }

    /// Records committed since `mark`, once at least `expected` have arrived and nothing more came
    /// during a short quiet period (commits at RELEASE arrive after the command has exited).
    func settle(from mark: Int, expected: Int, timeout: Double = 5, quiet: Double = 0.15) -> [Record] {
        let deadline = Date().addingTimeInterval(timeout)
        while count - mark < expected && Date() < deadline { usleep(5_000) }
        var seen = count
        while true {
            usleep(UInt32(quiet * 1_000_000))
            let now = count
            if now == seen || Date() >= deadline { break }
            seen = now
        }
        return records.withLock { Array($0[mark...]) }
    }

    func stop() {
        task.value?.cancel()
        _ = done.wait(timeout: .now() + 5)
        executor.shutdown()
    }
}

extension Record {
    var text: String? { kind == .value ? String(decoding: value, as: UTF8.self) : nil }
}
