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

let keys = quick ? 10_000 : 100_000
let reconcile = try await SyncBench.reconcile(n: keys, d: 10)
print(String(format: "reconcile d = 10 between two %d-key stores over TCP: %.0f ms, %d bytes, %d round trips (goal ≤ 1 s, ≤ 64 KB)",
             keys, reconcile.seconds * 1000, reconcile.bytes, reconcile.roundTrips))
let fresh = try await SyncBench.emptyHost(n: keys)
print(String(format: "empty host receives a %d-key tree: %.2f s; verifying those records alone: %.2f s; ratio %.2f× (goal ≤ 2×)",
             keys, fresh.seconds, fresh.verifySeconds, fresh.seconds / fresh.verifySeconds))

let anchor = try await SerfAnchor.userEventLatency(events: quick ? 30 : 100)
print(String(format: "anchor: Serf user event between two local Serf agents (lan profile) p50 %.1f ms, p99 %.1f ms", anchor.p50, anchor.p99))
for n in [3, 5] {
    let latency = try await GossipBench.writeToVisible(agents: n, writes: quick ? 50 : 200)
    print(String(format: "%d agents: write → visible on every other agent p50 %.1f ms, p99 %.1f ms (goal p50 ≤ 25 ms, p99 ≤ 100 ms)",
                 n, latency.p50, latency.p99))
}
