import Dispatch
import Foundation
import KVGossipCore
import KVGossipStore

/// Fills a data directory with a large tree fast, for tests and benchmarks of answers of any size:
/// records signed by the root key (signing spread over the cores) and applied through the store
/// in large batches, exactly as a sync would apply them. Start an agent on the directory afterwards
/// (with the same root); the store is closed when `fill` returns.
public enum TreeGenerator {
    /// The i-th generated key: 1,000 keys per directory, `/big/d0000/k0000000` and on (with
    /// `under` = "/big"), so key order is generation order.
    public static func key(_ i: Int, under prefix: String) -> String {
        "\(prefix)/d\(pad(i / 1000, 4))/k\(pad(i, 7))"
    }

    public static func value(_ i: Int) -> String { "value \(i)" }

    /// Writes `count` keys below `prefix` into the store in `directory` for the cluster of `root`;
    /// returns the seconds it took.
    @discardableResult
    public static func fill(directory: String, root: SigningKey, count: Int, under prefix: String = "/big", batch: Int = 5_000) throws -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        let store = try Store(directory: directory, root: root.publicKey)
        // Dated a minute back, so the agent's clock-skew check never refuses them.
        let nowMs = UInt64(Date().timeIntervalSince1970 * 1000) - 60_000
        for first in stride(from: 0, to: count, by: batch) {
            let n = min(batch, count - first)
            let records = signed(n) { j in
                let i = first + j
                return Record(
                    cluster: root.publicKey, key: try! Key(key(i, under: prefix)), kind: .value, value: Array(value(i).utf8),
                    timestamp: HLC(physicalMs: nowMs), signer: root, pool: [])
            }
            let outcomes = try store.apply(records)
            let refused = outcomes.filter { !$0.isAccepted && $0 != .duplicate }
            guard refused.isEmpty else { throw GeneratorError("the store refused generated records: \(refused.prefix(3))") }
        }
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// `make(0..<n)`, made on every core (signing dominates).
    static func signed(_ n: Int, _ make: @Sendable (Int) -> Record) -> [Record] {
        let slots = UnsafeMutableBufferPointer<Record?>.allocate(capacity: n)
        slots.initialize(repeating: nil)
        defer { slots.deallocate() }
        nonisolated(unsafe) let out = slots
        let workers = max(1, ProcessInfo.processInfo.activeProcessorCount)
        let chunk = (n + workers - 1) / workers
        // Each worker writes only its own range of slots.
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            for i in (w * chunk)..<min(n, (w + 1) * chunk) { out[i] = make(i) }
        }
        return slots.map { $0! }
    }

    private static func pad(_ n: Int, _ width: Int) -> String {
        let text = String(n)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }
}

public struct GeneratorError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
