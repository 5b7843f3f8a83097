import Foundation
import KVGossipCore
import KVGossipStore
import KVGossipTestSupport
import Synchronization
@testable import KVGossipMount

/// Every record the store commits during a test, to check that one edit made exactly one record.
/// It observes commits synchronously, so a record is here as soon as its commit returns.
final class ChangeRecorder: Sendable {
    private let records = Locked<[Record]>([])
    private let observation: CommitObservation

    init(_ store: Store) {
        observation = store.observeCommits { [records] changes in
            for case .record(let record, _, _) in changes { records.withLock { $0.append(record) } }
        }
    }

    var count: Int { records.withLock { $0.count } }

    /// Records committed since `mark`, once at least `expected` have arrived and `isQuiet` says no
    /// commit is still on its way (the mount holds no open file: a save commits at RELEASE at the
    /// latest, and the kernel queues RELEASE before the closing process is reaped).
    func settle(from mark: Int, expected: Int, timeout: Double = 30, isQuiet: () -> Bool) -> [Record] {
        Readiness.wait(timeout: timeout) { count - mark >= expected && isQuiet() }
        return records.withLock { Array($0[mark...]) }
    }

    func stop() { observation.cancel() }
}

extension Record {
    var text: String? { kind == .value ? String(decoding: value, as: UTF8.self) : nil }
}
