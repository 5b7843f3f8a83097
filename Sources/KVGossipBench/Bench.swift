import Foundation
import KVGossipCore
import KVGossipStore

enum Bench {
    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
    }

    static func tempDirectory() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("kvg-bench-\(UUID().uuidString)").path
    }

    static let root = SigningKey(seed: [UInt8](repeating: 1, count: 32))!
    static let writer = SigningKey(seed: [UInt8](repeating: 2, count: 32))!
    static let nowMs = UInt64(Date().timeIntervalSince1970 * 1000)

    /// Baseline: libsodium verifying one record-sized signature after another.
    static func rawVerifyRate(count: Int) -> Double {
        let message = [UInt8](repeating: 7, count: 150)
        let sig = writer.sign(message)
        var ok = 0
        let t = seconds {
            for _ in 0..<count where writer.publicKey.verifies(sig, over: message) { ok += 1 }
        }
        precondition(ok == count)
        return Double(count) / t
    }

    /// Records under one shared grant, applied through the store in sync-sized batches.
    static func batchedApply(records: Int, batch: Int) throws -> (count: Int, rate: Double) {
        let dir = tempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try Store(directory: dir, root: root.publicKey)
        let grant = try Grant(
            cluster: root.publicKey, issuer: root, issuee: writer.publicKey, patterns: [try Pattern("/bench/**")],
            mayDelegate: false, notBefore: nowMs - 60_000, expires: nil, nonce: [UInt8](repeating: 0, count: 16))
        let all = (0..<records).map { i in
            Record(
                cluster: root.publicKey, key: try! Key("/bench/k\(i)"), kind: .value, value: Array("value-\(i)".utf8),
                timestamp: HLC(physicalMs: nowMs - 1000), signer: writer, pool: [grant])
        }
        // As a sync session does: validate batch k+1 while batch k commits.
        let batches = stride(from: 0, to: all.count, by: batch).map { Array(all[$0..<min($0 + batch, all.count)]) }
        var accepted = 0
        let t = try seconds {
            var next = store.validate(batches[0])
            for k in batches.indices {
                let current = next
                let group = DispatchGroup()
                nonisolated(unsafe) var upcoming: ValidatedBatch?
                if k + 1 < batches.count {
                    DispatchQueue.global().async(group: group) { upcoming = store.validate(batches[k + 1]) }
                }
                accepted += try store.apply(current).filter(\.isAccepted).count
                group.wait()
                if let upcoming { next = upcoming }
            }
        }
        precondition(accepted == records, "only \(accepted) of \(records) accepted")
        return (records, Double(records) / t)
    }

    /// One record per transaction, each durable before the call returns.
    static func singleApplyLatency(count: Int) throws -> (p50: Double, p99: Double) {
        let dir = tempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try Store(directory: dir, root: root.publicKey)
        var samples: [Double] = []
        for i in 0..<count {
            let r = Record(
                cluster: root.publicKey, key: try Key("/lat/k\(i % 100)"), kind: .value, value: Array("v\(i)".utf8),
                timestamp: HLC(physicalMs: nowMs - 1000, counter: UInt16(i / 100)), signer: root, pool: [])
            samples.append(try seconds {
                let outcome = try store.apply(r)
                precondition(outcome == .accepted)
            } * 1000)
        }
        samples.sort()
        return (percentile(samples, 0.5), percentile(samples, 0.99))
    }

    /// Cost of folding one changed entry into a summary of n entries (the pure algorithm on the
    /// in-memory backend; SQLite adds a few indexed reads and writes per level).
    static func merkleUpdateCost(entries n: Int, updates: Int) throws -> (microseconds: Double, depth: Int) {
        var backend = InMemoryMerkleBackend()
        var rng = SystemRandomNumberGenerator()
        func randomHash() -> Hash256 { Hash256(bytes: (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) })! }
        var ids: [Hash256] = []
        ids.reserveCapacity(n)
        var entries: [MerkleEntry] = []
        for _ in 0..<n {
            let e = MerkleEntry(id: randomHash(), digest: randomHash())
            ids.append(e.id)
            entries.append(e)
        }
        for e in entries { _ = backend.upsert(e) }
        _ = try MerkleTrie.build(from: entries, into: &backend)
        let changes = (0..<updates).map { _ in MerkleEntry(id: ids.randomElement(using: &rng)!, digest: randomHash()) }
        let t = try seconds {
            for e in changes {
                let delta = backend.upsert(e)
                _ = try MerkleTrie.apply([MerkleChange(id: e.id, countDelta: delta)], to: &backend)
            }
        }
        return (t / Double(updates) * 1e6, backend.maxDepth)
    }
}
