import Foundation
import KVGossipCore
import KVGossipNode
import KVGossipStore
import KVGossipSync
import Logging

/// Reconciliation over real links (handshake, encryption) on loopback between two real stores,
/// in this process.
enum SyncBench {
    struct Host {
        let engine: GossipEngine
        let directory: String
        let address: PeerAddress
        let server: Task<Void, Error>
        var node: Node { engine.node }
    }

    static func host(records: [Record]) async throws -> Host {
        let dir = Bench.tempDirectory()
        let store = try Store(directory: dir, root: Bench.root.publicKey)
        for start in stride(from: 0, to: records.count, by: 1000) {
            _ = try store.apply(Array(records[start..<min(start + 1000, records.count)]))
        }
        // Each host has a node key of its own, admitted by a membership grant from the root.
        let key = SigningKey.generate()
        let node = try Node(store: store, key: key)
        _ = try node.addGrants([try Grant(
            cluster: Bench.root.publicKey, issuer: Bench.root, issuee: key.publicKey, patterns: [], mayDelegate: false,
            notBefore: Bench.nowMs - 3_600_000, expires: nil, nonce: secureRandomBytes(16))])
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let engine = GossipEngine(node: node, options: GossipEngine.Options(nodeName: "bench-\(dir.suffix(6))", syncPort: 0), logger: logger)
        let (portStream, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let task = Task { try await engine.serve(host: "127.0.0.1", port: 0) { portContinuation.yield($0) } }
        var port = 0
        for await p in portStream {
            port = p
            break
        }
        return Host(engine: engine, directory: dir, address: PeerAddress(host: "127.0.0.1", port: port), server: task)
    }

    static func records(_ n: Int, prefix: String, value: (Int) -> String) -> [Record] {
        (0..<n).map { i in
            Record(
                cluster: Bench.root.publicKey, key: try! Key("\(prefix)/k\(i)"), kind: .value, value: Array(value(i).utf8),
                timestamp: HLC(physicalMs: Bench.nowMs - 10_000), signer: Bench.root, pool: [])
        }
    }

    /// Initiates from `from` to `to` and measures the whole session (the link is dialed first, so
    /// its handshake is not counted; `handshake` measures that).
    static func session(from: Host, to: Host) async throws -> (seconds: Double, bytes: Int, report: SyncReport) {
        let link = try await from.engine.link(to: to.address)
        let before = link.traffic
        let start = DispatchTime.now().uptimeNanoseconds
        let report = try await from.engine.session(with: to.address)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let after = link.traffic
        return (seconds, after.sent - before.sent + after.received - before.received, report)
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
        let (seconds, bytes, report) = try await session(from: a, to: b)
        precondition(report.recordDifferences == d, "found \(report.recordDifferences) differences, expected \(d)")
        precondition(a.node.store.treeHash == b.node.store.treeHash)
        return (seconds, bytes, report.viewRequests + 2)
    }

    /// Link set-up: TCP connect, the three handshake frames (two signatures made, two verified, a key
    /// exchange) and the stream headers, per link.
    /// Beside it, the baseline: a plain TCP connect to the same listener, closed at once.
    static func handshake(links: Int) async throws -> (link: Double, tcpConnect: Double) {
        let a = try await host(records: [])
        let b = try await host(records: [])
        defer { cleanUp([a, b]) }
        var connect = 0.0
        for _ in 0..<links {
            let start = DispatchTime.now().uptimeNanoseconds
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = in_port_t(UInt16(b.address.port).bigEndian)
            sin.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &sin) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            precondition(connected == 0, "connect to the bench listener failed")
            connect += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            close(fd)
        }
        var total = 0.0
        for _ in 0..<links {
            let start = DispatchTime.now().uptimeNanoseconds
            let link = try await a.engine.link(to: b.address)
            total += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            link.close()
            while !link.isClosed { try await Task.sleep(for: .milliseconds(1)) }
        }
        return (total / Double(links), connect / Double(links))
    }

    /// An empty host pulling a whole tree of n keys, beside the time to just verify those records.
    /// `prechecked`: the pulled batches whose checks began on arrival (`Store.precheck`), of all
    /// the batches applied.
    static func emptyHost(n: Int) async throws -> (seconds: Double, verifySeconds: Double, prechecked: Int) {
        let all = records(n, prefix: "/tree", value: { "value-\($0)" })
        let copies = all.map(Bench.received)
        let verify = Bench.seconds {
            for r in copies { precondition(r.signatureIsValid) }
        }
        let full = try await host(records: all)
        let empty = try await host(records: [])
        defer { cleanUp([full, empty]) }
        let (seconds, _, report) = try await session(from: empty, to: full)
        precondition(report.recordsReceived == n)
        return (seconds, verify, empty.engine.node.store.precheckedBatchesTaken)
    }
}
