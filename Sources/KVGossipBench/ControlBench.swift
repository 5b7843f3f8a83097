import Foundation
import KVGossipClient
import KVGossipControl
import KVGossipCore
import KVGossipTestSupport
import Synchronization

/// Answers of any size: a store of n generated keys, one agent on it, and the three ways to read
/// the whole tree (`kvgossip ls`, `kvgossip watch /`, a client list subscription), each timed to
/// its first and last line with the agent's peak memory while it answers.
enum ControlBench {
    struct Reading {
        var firstLine: Double
        var lastLine: Double
        var lines: Int
        /// The agent's resident memory before, and its peak while answering (MiB): all of it
        /// (VmHWM, which counts the pages of the database SQLite maps into memory, up to 256 MiB)
        /// and the heap alone (RssAnon, sampled every 20 ms).
        var rssBefore: Double
        var rssPeak: Double
        var heapBefore: Double
        var heapPeak: Double
    }

    struct Figures {
        var keys: Int
        /// nil when an earlier run's tree was reused (KVG_BENCH_TREE).
        var generateSeconds: Double?
        var startSeconds: Double
        var statusMs: (first: Double, again: Double, afterWrite: Double)
        /// Connect to the first answer, in ms: the Unix socket, and TCP with the handshake.
        var setup: (unix: (p50: Double, p99: Double), tcp: (p50: Double, p99: Double))
        var ls: Reading
        var watch: Reading
        var subscription: Reading
        var verification: Verification
    }

    /// What the client's verification of every record costs (Docs/client.md §Verification).
    struct Verification {
        /// The whole tree read with `KVClient.list`, every record verified (seconds).
        var verifiedList: Double
        /// The same pages read with `ControlClient.list`, encodings decoded, nothing verified.
        var rawList: Double
        /// The core check alone (`RecordValidator.validate`, one record, root-signed), per record (µs).
        var validateMicros: Double
        /// The same for a record signed by a writer with a one-grant chain (the grant's signature
        /// is verified once and remembered, as in the client).
        var validateGrantedMicros: Double
        var keys: Int

        var perRecordMicros: Double { (verifiedList - rawList) / Double(keys) * 1e6 }
    }

    /// The tree is generated, or reused from KVG_BENCH_TREE (see `Bench.tree`).
    static func run(keys n: Int) async throws -> Figures {
        let dir = Bench.tempDirectory()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let generate = try Bench.tree(keys: n, at: "\(dir)/n0")

        let started = DispatchTime.now().uptimeNanoseconds
        let tcpPort = LoopbackPort.free()
        let agent = try GossipBench.Agent(
            binary: GossipBench.binary(), directory: dir, name: "n0", root: Bench.root, port: LoopbackPort.free(), peers: [],
            extra: ["--control-listen", "127.0.0.1:\(tcpPort)"])
        defer { agent.stop() }
        let control = try await agent.connect()
        let startSeconds = seconds(since: started)
        let pid = agent.process.processIdentifier

        // A value an interrupted earlier run left in a kept tree goes first (not-found otherwise).
        _ = try await control.call({ $0.key = "/bench/status" }, op: .delete)
        // Status three times: counting, with the tree unchanged, and after a write (counting again).
        var statusMs: [Double] = []
        for round in 0..<3 {
            if round == 2 {
                _ = try await control.call({
                    $0.key = "/bench/status"
                    $0.value = Data("x".utf8)
                }, op: .mint)
            }
            let t = DispatchTime.now().uptimeNanoseconds
            let status = try await control.call({ _ in }, op: .status).status
            guard status?.records == n + (round == 2 ? 1 : 0) else { throw BenchError("status counts \(status?.records ?? -1) keys, expected \(n)") }
            statusMs.append(seconds(since: t) * 1000)
        }
        // The tree is kept for later runs (KVG_BENCH_TREE) as it was generated: no extra value.
        _ = try await control.call({ $0.key = "/bench/status" }, op: .delete)
        await control.close()
        let setup = try await connectionSetup(socket: agent.socket, tcpPort: tcpPort, rounds: 200)

        let ls = try measure(pid: pid, lines: n) {
            try lineTimes(GossipBench.binary(), ["ls", "/big", "--control", agent.socket], until: n)
        }
        let watch = try measure(pid: pid, lines: n) {
            try lineTimes(GossipBench.binary(), ["watch", "/", "--control", agent.socket], until: n)
        }
        let subscription = try await measureAsync(pid: pid) { try await subscribe(agent.socket, until: n) }
        let verification = try await verificationCost(agent.socket, keys: n)
        return Figures(
            keys: n, generateSeconds: generate, startSeconds: startSeconds, statusMs: (statusMs[0], statusMs[1], statusMs[2]), setup: setup,
            ls: ls, watch: watch, subscription: subscription, verification: verification)
    }

    /// The tree listed twice over one socket: by the client, which verifies every record, and as
    /// raw pages with their encodings (the same bytes on the wire, decoded, not verified); then
    /// the core check alone, timed on records made here.
    static func verificationCost(_ socket: String, keys n: Int) async throws -> Verification {
        var options = KVClientOptions()
        options.cluster = Bench.root.publicKey
        let client = KVClient(endpoints: [.unix(socket)], options: options)
        var t = DispatchTime.now().uptimeNanoseconds
        let listed = try await client.list(pattern: "/big/**")
        let verified = seconds(since: t)
        await client.close()
        guard listed.count == n else { throw BenchError("the client listed \(listed.count) of \(n) keys") }

        let control = try await ControlClient.connect(.unix(socket))
        var raw = 0
        t = DispatchTime.now().uptimeNanoseconds
        try await control.list({
            $0.pattern = "/big/**"
            $0.includeEncoding = true
        }) { page in raw += page.count }
        let unverified = seconds(since: t)
        await control.close()
        guard raw == n else { throw BenchError("the raw list had \(raw) of \(n) keys") }

        return Verification(
            verifiedList: verified, rawList: unverified, validateMicros: validateMicros(granted: false),
            validateGrantedMicros: validateMicros(granted: true), keys: n)
    }

    /// µs per `RecordValidator.validate` over 2,000 distinct records.
    static func validateMicros(granted: Bool) -> Double {
        let root = Bench.root
        let writer = SigningKey(seed: [UInt8](repeating: 2, count: 32))!
        let grant = try! Grant(
            cluster: root.publicKey, issuer: root, issuee: writer.publicKey, patterns: [try! Pattern("/bench/**")], mayDelegate: false,
            notBefore: 0, expires: nil, nonce: [UInt8](repeating: 3, count: 16))
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        let records = (0..<2_000).map { i in
            Record(
                cluster: root.publicKey, key: try! Key("/bench/k\(i)"), kind: .value, value: Array("value \(i)".utf8),
                timestamp: HLC(physicalMs: now), signer: granted ? writer : root, pool: granted ? [grant] : [])
        }
        let validator = RecordValidator(root: root.publicKey)
        let t = DispatchTime.now().uptimeNanoseconds
        for r in records {
            guard validator.validate(r, nowMs: now, isRevoked: { _ in false }).chain != nil else { fatalError("a bench record did not verify") }
        }
        return seconds(since: t) / Double(records.count) * 1e6
    }

    /// Connection set-up to the first answer (a ping: `unwatch` of no watch, answered without the
    /// store), `rounds` times on each transport, alternating: on TCP that includes the handshake
    /// (two signatures, three verifications, the key exchange) as the root's key.
    static func connectionSetup(socket: String, tcpPort: Int, rounds: Int) async throws
        -> (unix: (p50: Double, p99: Double), tcp: (p50: Double, p99: Double))
    {
        let credentials = try ControlCredentials(cluster: Bench.root.publicKey, signingKey: Bench.root, grants: [], name: "bench")
        let tcp = ControlEndpoint.tcp(host: "127.0.0.1", port: tcpPort)
        // The TCP listener may bind a moment after the socket answers.
        for attempt in 0..<200 {
            if let client = try? await ControlClient.connect(tcp, credentials: credentials) {
                await client.close()
                break
            }
            if attempt == 199 { throw BenchError("the TCP control listener did not answer") }
            try await Task.sleep(for: .milliseconds(25))
        }
        var unix: [Double] = [], secured: [Double] = []
        for _ in 0..<rounds {
            for (endpoint, isTCP) in [(ControlEndpoint.unix(socket), false), (tcp, true)] {
                let start = DispatchTime.now().uptimeNanoseconds
                let client = try await ControlClient.connect(endpoint, credentials: isTCP ? credentials : nil)
                guard try await client.call({ _ in }, op: .unwatch).ok else { throw BenchError("the ping was refused on \(endpoint)") }
                let ms = seconds(since: start) * 1000
                await client.close()
                if isTCP { secured.append(ms) } else { unix.append(ms) }
            }
        }
        unix.sort()
        secured.sort()
        return ((Bench.percentile(unix, 0.5), Bench.percentile(unix, 0.99)), (Bench.percentile(secured, 0.5), Bench.percentile(secured, 0.99)))
    }

    /// Runs `body` with the agent's peak-memory mark reset, and reads the peak after.
    static func measure(pid: Int32, lines: Int, _ body: () throws -> (first: Double, last: Double, lines: Int)) throws -> Reading {
        let (before, heapBefore) = (ProcessMemory.resetPeak(pid), ProcessMemory.anonymous(pid))
        let heap = HeapSampler(pid: pid)
        let (first, last, count) = try body()
        guard count >= lines else { throw BenchError("only \(count) of \(lines) lines arrived") }
        return Reading(
            firstLine: first, lastLine: last, lines: count, rssBefore: before, rssPeak: ProcessMemory.peak(pid), heapBefore: heapBefore,
            heapPeak: heap.stop())
    }

    static func measureAsync(pid: Int32, _ body: () async throws -> (first: Double, last: Double, lines: Int)) async throws -> Reading {
        let (before, heapBefore) = (ProcessMemory.resetPeak(pid), ProcessMemory.anonymous(pid))
        let heap = HeapSampler(pid: pid)
        let (first, last, count) = try await body()
        return Reading(
            firstLine: first, lastLine: last, lines: count, rssBefore: before, rssPeak: ProcessMemory.peak(pid), heapBefore: heapBefore,
            heapPeak: heap.stop())
    }

    /// Starts `binary args` and times its output lines: the first, and the `until`-th (or the last
    /// before it exits). The process is stopped once `until` lines are in.
    static func lineTimes(_ binary: String, _ args: [String], until wanted: Int) throws -> (first: Double, last: Double, lines: Int) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        let start = DispatchTime.now().uptimeNanoseconds
        try p.run()
        var lines = 0
        var first = 0.0, last = 0.0
        let handle = out.fileHandleForReading
        while lines < wanted {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            let newlines = chunk.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
            guard newlines > 0 else { continue }
            if lines == 0 { first = seconds(since: start) }
            lines += newlines
            last = seconds(since: start)
        }
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
        return (first, last, lines)
    }

    /// A list subscription to the generated tree: the first event, and `.synced(.initial)`.
    static func subscribe(_ socket: String, until wanted: Int) async throws -> (first: Double, last: Double, lines: Int) {
        let client = KVClient(endpoints: [.unix(socket)])
        let start = DispatchTime.now().uptimeNanoseconds
        let list = try await client.subscribeList(pattern: "/big/**")
        var first = 0.0
        var added = 0
        for await event in list.events {
            if added == 0 { first = seconds(since: start) }
            if case .added = event { added += 1 }
            if event == .synced(.initial) { break }
        }
        let last = seconds(since: start)
        await list.unsubscribe()
        await client.close()
        guard added == wanted else { throw BenchError("the subscription held \(added) of \(wanted) keys") }
        return (first, last, added)
    }

    static func seconds(since start: UInt64) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }
}

/// The largest heap (RssAnon) a process had while this sampler ran, read every 20 ms on a thread
/// of its own.
final class HeapSampler: Sendable {
    private let peak = Mutex(0.0)
    private let running = Atomic<Bool>(true)
    private let done = DispatchSemaphore(value: 0)

    init(pid: Int32) {
        Thread.detachNewThread { [self] in
            while running.load(ordering: .relaxed) {
                let now = ProcessMemory.anonymous(pid)
                peak.withLock { $0 = max($0, now) }
                usleep(20_000)
            }
            done.signal()
        }
    }

    func stop() -> Double {
        running.store(false, ordering: .relaxed)
        done.wait()
        return peak.withLock { $0 }
    }
}
