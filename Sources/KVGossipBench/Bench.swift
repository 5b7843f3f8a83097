import Foundation
import KVGossipCore
import KVGossipStore
import KVGossipTestSupport

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

    /// A data directory at `path` holding `n` generated keys (TreeGenerator) for `root`; returns the
    /// seconds the generation took. With KVG_BENCH_TREE=DIR the tree is kept in DIR/n and reused by
    /// later runs (`path` becomes a link to it): a million keys take minutes to generate. Returns nil
    /// when a kept tree was reused.
    static func tree(keys n: Int, at path: String) throws -> Double? {
        guard let kept = ProcessInfo.processInfo.environment["KVG_BENCH_TREE"] else {
            return try TreeGenerator.fill(directory: path, root: root, count: n)
        }
        let tree = "\(kept)/\(n)"
        var generate: Double?
        if !FileManager.default.fileExists(atPath: "\(tree)/kvgossip.sqlite") {
            generate = try TreeGenerator.fill(directory: tree, root: root, count: n)
        }
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: tree)
        return generate
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

    /// A record as a peer hands it over: decoded from its encoding, so it is verified in full.
    /// One signed in this process is not (`Record.signedHere`), which would leave the checks out of
    /// every figure meant to include them.
    static func received(_ record: Record) -> Record {
        try! Record(decoding: record.encoded)
    }

    /// Records under one shared grant, applied through the store in sync-sized batches.
    /// `cores`: CPU seconds the process used per second of the run (how far checks and commit overlap).
    static func batchedApply(records: Int, batch: Int) throws -> (count: Int, rate: Double, cores: Double) {
        let dir = tempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try Store(directory: dir, root: root.publicKey)
        let grant = try Grant(
            cluster: root.publicKey, issuer: root, issuee: writer.publicKey, patterns: [try Pattern("/bench/**")],
            mayDelegate: false, notBefore: nowMs - 60_000, expires: nil, nonce: [UInt8](repeating: 0, count: 16))
        let all = (0..<records).map { i in
            received(Record(
                cluster: root.publicKey, key: try! Key("/bench/k\(i)"), kind: .value, value: Array("value-\(i)".utf8),
                timestamp: HLC(physicalMs: nowMs - 1000), signer: writer, pool: [grant]))
        }
        var accepted = 0
        let cpuBefore = ProcessCPU.seconds(ofTree: getpid())
        let t = try seconds { accepted = try applyInBatches(all, batch: batch, to: store) }
        let cpu = ProcessCPU.seconds(ofTree: getpid()) - cpuBefore
        precondition(accepted == records, "only \(accepted) of \(records) accepted")
        return (records, Double(records) / t, cpu / t)
    }

    /// Applies `records` in batches as a sync session applies the records it pulls, one batch
    /// after another: the next batch has arrived while one is applied (the peer keeps two
    /// unanswered), so its checks begin then (`Store.precheck`, as the link does on arrival).
    /// Returns how many were accepted.
    static func applyInBatches(_ records: [Record], batch: Int, to store: Store) throws -> Int {
        let batches = stride(from: 0, to: records.count, by: batch).map { Array(records[$0..<min($0 + batch, records.count)]) }
        var accepted = 0
        for (index, batch) in batches.enumerated() {
            if index == 0 { store.precheck(batch) }
            if index + 1 < batches.count { store.precheck(batches[index + 1]) }
            accepted += try store.apply(batch).filter(\.isAccepted).count
        }
        return accepted
    }

    /// One record per transaction, each durable before the call returns.
    static func singleApplyLatency(count: Int) throws -> (p50: Double, p99: Double) {
        let dir = tempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try Store(directory: dir, root: root.publicKey)
        var samples: [Double] = []
        for i in 0..<count {
            let r = received(Record(
                cluster: root.publicKey, key: try Key("/lat/k\(i % 100)"), kind: .value, value: Array("v\(i)".utf8),
                timestamp: HLC(physicalMs: nowMs - 1000, counter: UInt16(i / 100)), signer: root, pool: []))
            samples.append(try seconds {
                let outcome = try store.apply(r)
                precondition(outcome == .accepted)
            } * 1000)
        }
        samples.sort()
        return (percentile(samples, 0.5), percentile(samples, 0.99))
    }

    /// What refusing a record whose pool is 32 junk grants (16 glob-heavy patterns each, issued by
    /// keys nobody granted anything) costs, decoding included, as it arrives from a peer: decode,
    /// then apply (which refuses). The same with 1 KB patterns, which the pool byte limit refuses
    /// while decoding.
    static func junkPoolRefusal(count: Int) throws -> (fittingMicroseconds: Double, fatMicroseconds: Double, poolBytes: Int) {
        let dir = tempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try Store(directory: dir, root: root.publicKey)
        func encodedJunk(segments: Int, width: Int) throws -> ([[UInt8]], Int) {
            let pattern = try Pattern("/" + (0..<segments).map { "*\(String(repeating: "a", count: width))\($0)*" }.joined(separator: "/") + "/**")
            let pool = try (0..<32).map { _ in
                try Grant(
                    cluster: root.publicKey, issuer: SigningKey.generate(), issuee: writer.publicKey, patterns: Array(repeating: pattern, count: 16),
                    mayDelegate: true, notBefore: 0, expires: nil, nonce: [UInt8](repeating: 1, count: 16))
            }
            let records = (0..<count).map { i in
                Record(cluster: root.publicKey, key: try! Key("/junk/\(i)"), kind: .value, value: [1], timestamp: HLC(physicalMs: nowMs),
                       signer: writer, pool: pool).encoded
            }
            return (records, pool.reduce(0) { $0 + $1.encoded.count })
        }
        let (fitting, poolBytes) = try encodedJunk(segments: 10, width: 5)
        let (fat, _) = try encodedJunk(segments: 30, width: 28)
        let fittingTime = try seconds {
            for bytes in fitting {
                guard case .refused(let refusal, _) = try store.apply(try Record(decoding: bytes)), refusal.reason == .noAuthority else {
                    preconditionFailure("a junk-pool record was not refused as no-authority")
                }
            }
        }
        let fatTime = seconds {
            for bytes in fat { precondition((try? Record(decoding: bytes)) == nil, "a fat pool decoded") }
        }
        return (fittingTime * 1e6 / Double(count), fatTime * 1e6 / Double(count), poolBytes)
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
