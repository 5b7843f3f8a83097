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
        var ls: Reading
        var watch: Reading
        var subscription: Reading
    }

    /// With KVG_BENCH_TREE=DIR the generated tree is kept in DIR and reused by later runs (the
    /// generation of a million keys takes minutes).
    static func run(keys n: Int) async throws -> Figures {
        let dir = Bench.tempDirectory()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var generate: Double?
        if let kept = ProcessInfo.processInfo.environment["KVG_BENCH_TREE"] {
            let tree = "\(kept)/\(n)"
            if !FileManager.default.fileExists(atPath: "\(tree)/kvgossip.sqlite") {
                generate = try TreeGenerator.fill(directory: tree, root: Bench.root, count: n)
            }
            try FileManager.default.createSymbolicLink(atPath: "\(dir)/n0", withDestinationPath: tree)
        } else {
            generate = try TreeGenerator.fill(directory: "\(dir)/n0", root: Bench.root, count: n)
        }

        let started = DispatchTime.now().uptimeNanoseconds
        let agent = try GossipBench.Agent(binary: GossipBench.binary(), directory: dir, name: "n0", root: Bench.root, port: LoopbackPort.free(), peers: [])
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

        let ls = try measure(pid: pid, lines: n) {
            try lineTimes(GossipBench.binary(), ["ls", "/big", "--control", agent.socket], until: n)
        }
        let watch = try measure(pid: pid, lines: n) {
            try lineTimes(GossipBench.binary(), ["watch", "/", "--control", agent.socket], until: n)
        }
        let subscription = try await measureAsync(pid: pid) { try await subscribe(agent.socket, until: n) }
        return Figures(
            keys: n, generateSeconds: generate, startSeconds: startSeconds, statusMs: (statusMs[0], statusMs[1], statusMs[2]),
            ls: ls, watch: watch, subscription: subscription)
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
