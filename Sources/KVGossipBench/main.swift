import Foundation
import KVGossipCore
import KVGossipStore

/// `kvgossip-bench [--quick]`: prints the foundation's figures, each beside a baseline measured in
/// the same run, so the ratios mean something on whatever machine runs it.
let quick = CommandLine.arguments.contains("--quick")
let scale = quick ? 10 : 1

print("kvgossip-bench (\(quick ? "quick" : "full") run)")
let verifyRate = Bench.rawVerifyRate(count: 20_000 / scale)
print(String(format: "raw libsodium Ed25519 verify: %.0f ops/s (one core)", verifyRate))

let applied = try Bench.batchedApply(records: 100_000 / scale, batch: 1_000)
print(String(format: "verify+apply %d records (one-link chain, batches of 1000, durable per batch): %.0f records/s = %.2f× raw verify (goal ≥ 0.8×)",
             applied.count, applied.rate, applied.rate / verifyRate))

let latency = try Bench.singleApplyLatency(count: 2_000 / scale)
print(String(format: "single-record durable apply: p50 %.3f ms, p99 %.3f ms", latency.p50, latency.p99))

for n in [10_000, quick ? 100_000 : 1_000_000] {
    let m = try Bench.merkleUpdateCost(entries: n, updates: 20_000 / scale)
    print(String(format: "Merkle update per change at n = %8d: %.2f µs (in memory), depth %d", n, m.microseconds, m.depth))
}
