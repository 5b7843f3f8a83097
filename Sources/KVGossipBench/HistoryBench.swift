import Foundation
import KVGossipControl
import KVGossipCore
import KVGossipStore
import KVGossipTestSupport

/// What keeping history costs (Docs/history.md §Figures): the verify+apply rate when every record
/// replaces one (so each apply also copies the replaced record into history) with history on and
/// off, and reading a long history back.
enum HistoryBench {
    static let grant = try! Grant(
        cluster: Bench.root.publicKey, issuer: Bench.root, issuee: Bench.writer.publicKey, patterns: [try! Pattern("/bench/**")],
        mayDelegate: false, notBefore: Bench.nowMs - 60_000, expires: nil, nonce: [UInt8](repeating: 0, count: 16))

    static func records(keys: Int, generation: UInt16) -> [Record] {
        (0..<keys).map { i in
            Record(
                cluster: Bench.root.publicKey, key: try! Key("/bench/k\(i)"), kind: .value, value: Array("value-\(i)-\(generation)".utf8),
                timestamp: HLC(physicalMs: Bench.nowMs - 1000, counter: generation), signer: Bench.writer, pool: [grant])
        }
    }

    /// One timed run: records/s, and CPU microseconds per record over all the process's threads
    /// (the rate follows the CPU when both cores are busy checking signatures).
    struct Run { let rate: Double; let cpuMicroseconds: Double }

    /// Verify+apply when each record replaces the key's current one, with `history`.
    /// The first generation is applied untimed; the second is timed.
    static func replacingApply(keys: Int, history: HistoryBounds) throws -> Run {
        let dir = Bench.tempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try Store(directory: dir, root: Bench.root.publicKey, history: history)
        let first = try Bench.applyInBatches(records(keys: keys, generation: 0), batch: 1_000, to: store)
        precondition(first == keys)
        let next = records(keys: keys, generation: 1)
        var accepted = 0
        let cpuBefore = ProcessCPU.seconds(ofTree: getpid())
        let t = try Bench.seconds { accepted = try Bench.applyInBatches(next, batch: 1_000, to: store) }
        let cpu = ProcessCPU.seconds(ofTree: getpid()) - cpuBefore
        precondition(accepted == keys)
        let kept = try store.historyUsage.versions
        precondition(kept == (history.isOff ? 0 : keys))
        return Run(rate: Double(keys) / t, cpuMicroseconds: cpu / Double(keys) * 1e6)
    }

    /// Runs with history off and on in pairs, the order alternating from pair to pair (a run
    /// leaves writeback and a checkpoint behind that the run after it pays for). The rate of
    /// verify+apply swings by a sixth between runs of one build here, with the CPU time each
    /// record takes, so the cost is the median of each pair's ratio, not a ratio of medians.
    static func historyCost(keys: Int, pairs count: Int) throws -> (off: Run, on: Run, cost: Double, pairs: [(off: Run, on: Run)]) {
        var pairs: [(off: Run, on: Run)] = []
        for n in 0..<count {
            if n % 2 == 0 {
                let off = try replacingApply(keys: keys, history: .off)
                pairs.append((off, try replacingApply(keys: keys, history: .default)))
            } else {
                let on = try replacingApply(keys: keys, history: .default)
                pairs.append((try replacingApply(keys: keys, history: .off), on))
            }
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        func median(_ runs: [Run]) -> Run {
            Run(rate: median(runs.map(\.rate)), cpuMicroseconds: median(runs.map(\.cpuMicroseconds)))
        }
        let cost = 1 - median(pairs.map { $0.on.rate / $0.off.rate })
        return (median(pairs.map(\.off)), median(pairs.map(\.on)), cost, pairs)
    }

    /// Reading every version of a key with `versions` versions, as the agent answers `kvgossip log`
    /// (pages of versions with chains and standing), without and with the records themselves.
    static func logOfOneKey(versions: Int, repeats: Int) throws -> (p50Ms: Double, withRecordsP50Ms: Double, pages: Int) {
        let dir = Bench.tempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try Store(directory: dir, root: Bench.root.publicKey, history: HistoryBounds(versionsPerKey: versions, totalBytes: 1 << 30))
        let all = (0..<versions).map { n in
            Record(
                cluster: Bench.root.publicKey, key: try! Key("/bench/long"), kind: .value, value: Array("value number \(n)\n".utf8),
                timestamp: HLC(physicalMs: Bench.nowMs - 10_000 + UInt64(n)), signer: Bench.writer, pool: [grant])
        }
        let applied = try Bench.applyInBatches(all, batch: 100, to: store)
        precondition(applied == versions)
        let reader = HistoryReader(store: store) { [Bench.root.publicKey: "root"] }
        func readAll(encoding: Bool) throws -> (count: Int, pages: Int) {
            var count = 0, pages = 0
            var after: String?
            repeat {
                let page = try reader.page(key: try Key("/bench/long"), pattern: nil, after: after, limit: nil, encoding: encoding)
                count += page.versions.count
                after = page.next
                pages += 1
            } while after != nil
            return (count, pages)
        }
        var plain: [Double] = [], full: [Double] = []
        var pages = 0
        for _ in 0..<repeats {
            plain.append(try Bench.seconds {
                let read = try readAll(encoding: false)
                precondition(read.count == versions)
            } * 1000)
            full.append(try Bench.seconds { pages = try readAll(encoding: true).pages } * 1000)
        }
        return (Bench.percentile(plain.sorted(), 0.5), Bench.percentile(full.sorted(), 0.5), pages)
    }
}
