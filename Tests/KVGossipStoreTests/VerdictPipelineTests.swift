import Foundation
import KVGossipCore
import Synchronization
import Testing
@testable import KVGossipStore

@Suite struct VerdictPipelineTests {
    /// Records of every verdict: valid ones by the root, ones by a key with no grant, ones from
    /// too far in the future.
    static let batch: [Record] = (0..<150).map { i in
        switch i % 3 {
        case 0: StoreFixture.record("/k/\(i)", "v")
        case 1: StoreFixture.record("/k/\(i)", "v", by: StoreFixture.alice)
        default: StoreFixture.record("/k/\(i)", "v", at: StoreFixture.now + 60_000)
        }
    }

    static let validator = RecordValidator(root: StoreFixture.root.publicKey)

    static func checkedOneByOne() -> [AuthorityVerdict] {
        batch.map { validator.validate($0, nowMs: StoreFixture.now, isRevoked: { _ in false }) }
    }

    /// Counts the checks of each record, so a test sees none is skipped or run twice.
    final class CountingCheck: Sendable {
        let counts = Mutex([Int](repeating: 0, count: VerdictPipelineTests.batch.count))

        func check(_ record: Record) -> AuthorityVerdict {
            let index = VerdictPipelineTests.batch.firstIndex { $0.key == record.key }!
            counts.withLock { $0[index] += 1 }
            return VerdictPipelineTests.validator.validate(record, nowMs: StoreFixture.now, isRevoked: { _ in false })
        }
    }

    @Test(arguments: [0, 1, 2, 5])
    func verdictsAreTheOneByOneVerdictsInOrderEachCheckedOnce(workers: Int) {
        let counting = CountingCheck()
        let pipeline = VerdictPipeline(Self.batch) { counting.check($0) }
        pipeline.start(workers: workers)
        let verdicts = Self.batch.indices.map { pipeline.verdict(at: $0) }
        #expect(verdicts == Self.checkedOneByOne())
        // Every chunk was handed out once, so every record was checked once, whoever checked it.
        #expect(counting.counts.withLock { $0 } == Array(repeating: 1, count: Self.batch.count))
    }

    /// With no worker at all, the reading thread checks each chunk as it reaches it.
    @Test func theReaderChecksWhatNoWorkerTook() {
        let readers = Mutex(Set<ObjectIdentifier>())
        let pipeline = VerdictPipeline(Self.batch) { record in
            _ = readers.withLock { $0.insert(ObjectIdentifier(Thread.current)) }
            return Self.validator.validate(record, nowMs: StoreFixture.now, isRevoked: { _ in false })
        }
        let verdicts = Self.batch.indices.map { pipeline.verdict(at: $0) }
        #expect(verdicts == Self.checkedOneByOne())
        #expect(readers.withLock { $0 } == [ObjectIdentifier(Thread.current)])
    }

    /// A cancelled pipeline's workers take no further chunk; what the reader still asks for it
    /// checks itself.
    @Test func cancelStopsTheWorkersNotTheReader() {
        let counting = CountingCheck()
        let pipeline = VerdictPipeline(Self.batch) { counting.check($0) }
        pipeline.cancel()
        pipeline.start(workers: 2)
        #expect(pipeline.verdict(at: 100) == Self.checkedOneByOne()[100])
        let chunk = 100 / VerdictPipeline.chunkSize * VerdictPipeline.chunkSize..<(100 / VerdictPipeline.chunkSize + 1) * VerdictPipeline.chunkSize
        #expect(counting.counts.withLock { $0 } == Self.batch.indices.map { chunk.contains($0) ? 1 : 0 })
    }
}
