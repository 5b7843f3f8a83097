import Foundation
import KVGossipCore

/// The signature and chain checks of one batch, run ahead of the transaction that stores it.
///
/// Checking a record (an Ed25519 verify, about 65 µs) costs more than storing it, and the two used
/// to run one after the other: every core checked the whole batch, then one core stored it while
/// the others idled. Here worker threads take chunks of the batch from its front while the
/// committing thread reads the verdicts in order, so checks and commit overlap
/// (Docs/architecture.md §Durability).
///
/// The committing thread checks a chunk itself when it reaches one no worker has taken: the batch
/// completes even if no worker ever gets a thread, and a caller that blocks here cannot deadlock
/// on a busy thread pool.
final class VerdictPipeline: @unchecked Sendable {
    /// Records per chunk: about 2 ms of checks, small enough that the committing thread rarely
    /// waits long for the chunk it needs, large enough that the lock is taken rarely.
    static let chunkSize = 32

    private let batch: [KVGossipCore.Record]
    /// The clock the checks judge the records by (Unix ms).
    let nowMs: UInt64
    private let check: @Sendable (KVGossipCore.Record) -> AuthorityVerdict
    private let chunks: Int
    // Everything below is guarded by `condition`.
    private let condition = NSCondition()
    private enum ChunkState { case waiting, checking, checked }
    private var states: [ChunkState]
    /// No chunk below this one is waiting: where workers look for the next one.
    private var firstWaiting = 0
    private var verdicts: [AuthorityVerdict?]
    private var cancelled = false

    init(_ batch: [KVGossipCore.Record], nowMs: UInt64 = 0, check: @escaping @Sendable (KVGossipCore.Record) -> AuthorityVerdict) {
        self.batch = batch
        self.nowMs = nowMs
        self.check = check
        chunks = (batch.count + Self.chunkSize - 1) / Self.chunkSize
        verdicts = Array(repeating: nil, count: batch.count)
        states = Array(repeating: .waiting, count: chunks)
    }

    /// Whether these are the records this pipeline checks, byte for byte and in the same order (a
    /// copy with the same digests but another signature, value or pool must be checked itself).
    func checks(_ records: [KVGossipCore.Record]) -> Bool {
        records.count == batch.count && zip(records, batch).allSatisfy { $0.isIdentical(to: $1) }
    }

    /// Starts `workers` threads from the global pool taking chunks until none is left.
    func start(workers: Int) {
        for _ in 0..<min(workers, chunks) {
            DispatchQueue.global().async { self.work() }
        }
    }

    /// The verdict for the record at `index`. Meant to be read in order, from one thread (any
    /// order is correct; in order, the workers are always ahead of the reader).
    func verdict(at index: Int) -> AuthorityVerdict {
        let chunk = index / Self.chunkSize
        condition.lock()
        defer { condition.unlock() }
        if states[chunk] == .waiting {
            // No worker has taken it: check it here rather than wait.
            states[chunk] = .checking
            condition.unlock()
            let checked = checkChunk(chunk)
            condition.lock()
            store(checked, chunk: chunk)
        }
        while states[chunk] != .checked { condition.wait() }
        return verdicts[index]!
    }

    /// Stops the workers after the chunks they are checking (the transaction ended early).
    func cancel() {
        condition.lock()
        cancelled = true
        condition.unlock()
    }

    private func work() {
        while true {
            condition.lock()
            while firstWaiting < chunks, states[firstWaiting] != .waiting { firstWaiting += 1 }
            guard !cancelled, firstWaiting < chunks else {
                condition.unlock()
                return
            }
            let chunk = firstWaiting
            states[chunk] = .checking
            condition.unlock()
            let checked = checkChunk(chunk)
            condition.lock()
            store(checked, chunk: chunk)
            condition.broadcast()
            condition.unlock()
        }
    }

    private func checkChunk(_ chunk: Int) -> [AuthorityVerdict] {
        (chunk * Self.chunkSize..<min(batch.count, (chunk + 1) * Self.chunkSize)).map { check(batch[$0]) }
    }

    /// Called with the lock held.
    private func store(_ checked: [AuthorityVerdict], chunk: Int) {
        for (offset, verdict) in checked.enumerated() { verdicts[chunk * Self.chunkSize + offset] = verdict }
        states[chunk] = .checked
    }
}
