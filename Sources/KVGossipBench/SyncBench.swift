import Foundation
import KVGossipCore
import KVGossipNode
import KVGossipStore
import KVGossipSync
import Logging

/// Reconciliation over real TCP on loopback between two real stores, in this process.
enum SyncBench {
    struct Host {
        let node: Node
        let directory: String
        let port: Int
        let server: Task<Void, Error>
    }

    static func host(records: [Record]) async throws -> Host {
        let dir = Bench.tempDirectory()
        let store = try Store(directory: dir, root: Bench.root.publicKey)
        for start in stride(from: 0, to: records.count, by: 1000) {
            _ = try store.apply(Array(records[start..<min(start + 1000, records.count)]))
        }
        let node = try Node(store: store, key: Bench.root)
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let state = StoreSyncState(node: node)
        let server = SyncServer(options: SyncTransportOptions(), logger: logger) { _ in
            SyncResponder(state: state, localName: "responder", syncPort: 0)
        }
        let (portStream, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let task = Task { try await server.serve(host: "127.0.0.1", port: 0) { portContinuation.yield($0) } }
        var port = 0
        for await p in portStream {
            port = p
            break
        }
        return Host(node: node, directory: dir, port: port, server: task)
    }

    static func records(_ n: Int, prefix: String, value: (Int) -> String) -> [Record] {
        (0..<n).map { i in
            Record(
                cluster: Bench.root.publicKey, key: try! Key("\(prefix)/k\(i)"), kind: .value, value: Array(value(i).utf8),
                timestamp: HLC(physicalMs: Bench.nowMs - 10_000), signer: Bench.root, pool: [])
        }
    }

    /// Initiates from `from` to `to` and measures the whole session.
    static func session(from: Host, to: Host) async throws -> (seconds: Double, stats: TransferStats, report: SyncReport) {
        var initiator = SyncInitiator(state: StoreSyncState(node: from.node), localName: "initiator", syncPort: 0)
        let start = DispatchTime.now().uptimeNanoseconds
        let opening = try initiator.start()
        let stats = try await SyncTransport.dial(
            PeerAddress(host: "127.0.0.1", port: to.port), driver: &initiator, opening: opening, options: SyncTransportOptions())
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return (seconds, stats, initiator.report)
    }

    static func cleanUp(_ hosts: [Host]) {
        for h in hosts {
            h.server.cancel()
            try? FileManager.default.removeItem(atPath: h.directory)
        }
    }

    /// d differences (half changed on each side) between two stores of n keys.
    static func reconcile(n: Int, d: Int) async throws -> (seconds: Double, bytes: Int, roundTrips: Int) {
        let base = records(n, prefix: "/bench", value: { "value-\($0)" })
        let a = try await host(records: base)
        var changed = base
        for i in 0..<d {
            let j = i * (n / d)
            changed[j] = Record(
                cluster: Bench.root.publicKey, key: base[j].key, kind: .value, value: Array("changed-\(i)".utf8),
                timestamp: HLC(physicalMs: Bench.nowMs - 5_000), signer: Bench.root, pool: [])
        }
        let b = try await host(records: changed)
        defer { cleanUp([a, b]) }
        let (seconds, stats, report) = try await session(from: a, to: b)
        precondition(report.recordDifferences == d, "found \(report.recordDifferences) differences, expected \(d)")
        precondition(a.node.store.treeHash == b.node.store.treeHash)
        return (seconds, stats.bytesSent + stats.bytesReceived, report.viewRequests + 2)
    }

    /// An empty host pulling a whole tree of n keys, beside the time to just verify those records.
    static func emptyHost(n: Int) async throws -> (seconds: Double, verifySeconds: Double) {
        let all = records(n, prefix: "/tree", value: { "value-\($0)" })
        let verify = Bench.seconds {
            for r in all { precondition(r.signatureIsValid) }
        }
        let full = try await host(records: all)
        let empty = try await host(records: [])
        defer { cleanUp([full, empty]) }
        let (seconds, _, report) = try await session(from: empty, to: full)
        precondition(report.recordsReceived == n)
        return (seconds, verify)
    }
}
