import Foundation
import Glibc
import KVGossipControl
import KVGossipMount
import KVGossipProcess
import KVGossipTestSupport
import Synchronization

/// The mount against tmpfs in the same run: one agent process with `--mount`, and the same files
/// written to a directory under /dev/shm. Every loop runs in this process, through plain syscalls,
/// so both sides pay exactly the same client cost.
enum MountBench {
    /// How readers read: the default (a passthrough backing per version where the kernel has FUSE
    /// passthrough), the same agent with passthrough turned off (direct I/O, the default before),
    /// or `--mount-page-cache`.
    enum Mode: CaseIterable {
        case passthrough, directIO, pageCache

        var name: String {
            switch self {
            case .passthrough: "mount (default: passthrough)"
            case .directIO: "mount (KVGOSSIP_MOUNT_PASSTHROUGH=0: direct I/O)"
            case .pageCache: "mount --mount-page-cache"
            }
        }
        var arguments: [String] { self == .pageCache ? ["--mount-page-cache"] : [] }
        var environment: [String: String] { self == .directIO ? ["KVGOSSIP_MOUNT_PASSTHROUGH": "0"] : [:] }
    }

    /// Per-cycle latencies of open + read + close, µs.
    struct Cycle {
        var p50: Double
        var p99: Double
        var mean: Double
    }

    struct Figures {
        var openReadClose: (mount: Cycle, tmpfs: Cycle)
        /// The mount's readers while another thread saves a different key through the mount in a loop.
        var openReadCloseBesideWriter: Cycle
        var savesBesideReaders: Int
        var catPerSecond: (mount: Double, tmpfs: Double)
        var warm16MiB: (mount: Double, tmpfs: Double)  // GB/s
        var warm1MiBPerOpen: (mount: Double, tmpfs: Double)  // GB/s
        var echoWrite: (p50: Double, p99: Double, tmpfsP50: Double)  // ms
        var setToInotify: (p50: Double, p99: Double, staleReads: Int)  // ms
        var cliSetToInotify: (p50: Double, p99: Double)  // ms, including the CLI process
    }

    static func run(quick: Bool, mode: Mode) async throws -> Figures {
        let dir = Bench.tempDirectory()
        let mountpoint = dir + "/kv"
        let shm = "/dev/shm/kvg-bench-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: shm + "/bench", withIntermediateDirectories: true)
        defer {
            try? FileManager.default.removeItem(atPath: shm)
            try? FileManager.default.removeItem(atPath: dir)
        }
        let agent = try GossipBench.Agent(
            binary: GossipBench.binary(), directory: dir, name: "m", root: Bench.root, port: LoopbackPort.free(),
            peers: [], extra: ["--mount", mountpoint] + mode.arguments, environment: mode.environment)
        defer { agent.stop() }
        let client = try await agent.connect()
        defer { Task { await client.close() } }
        try await waitForMount(mountpoint)
        try FileManager.default.createDirectory(atPath: mountpoint + "/bench", withIntermediateDirectories: true)

        let small = Array("postgres://db2.internal:5432/app\n".utf8)
        let big = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        for base in [mountpoint, shm] {
            try writeFile(base + "/bench/small", small)
            try writeFile(base + "/bench/big", big)
        }

        let cycles = quick ? 5_000 : 50_000
        let orcMount = try openReadClose(mountpoint + "/bench/small", cycles: cycles, expect: small.count)
        let orcTmpfs = try openReadClose(shm + "/bench/small", cycles: cycles, expect: small.count)
        let (orcBesideWriter, saves) = try besideWriter(mountpoint + "/bench/other") {
            try openReadClose(mountpoint + "/bench/small", cycles: cycles, expect: small.count)
        }

        // Alternating rounds, so drift in the machine's load falls on both sides alike.
        var catSeconds = (mount: 0.0, tmpfs: 0.0)
        let rounds = 10, catsPerRound = quick ? 20 : 200
        for _ in 0..<rounds {
            catSeconds.tmpfs += try catTime(shm + "/bench/small", times: catsPerRound)
            catSeconds.mount += try catTime(mountpoint + "/bench/small", times: catsPerRound)
        }
        let catTmpfs = Double(rounds * catsPerRound) / catSeconds.tmpfs
        let catMount = Double(rounds * catsPerRound) / catSeconds.mount

        let opens = quick ? 8 : 64
        let warm16Mount = try warmReadRate(mountpoint + "/bench/big", bytes: big.count, perOpen: 16, opens: opens)
        let warm16Tmpfs = try warmReadRate(shm + "/bench/big", bytes: big.count, perOpen: 16, opens: opens)
        let warm1Mount = try warmReadRate(mountpoint + "/bench/big", bytes: big.count, perOpen: 1, opens: opens * 16)
        let warm1Tmpfs = try warmReadRate(shm + "/bench/big", bytes: big.count, perOpen: 1, opens: opens * 16)

        let writes = quick ? 100 : 1_000
        let echoMount = try echoLatencies(mountpoint + "/bench/echo", writes: writes)
        let echoTmpfs = try echoLatencies(shm + "/bench/echo", writes: writes)

        let sets = quick ? 50 : 300
        let notify = try await setToInotify(client: client, mountpoint: mountpoint, sets: sets)
        let cli = try cliSetToInotify(socket: agent.socket, mountpoint: mountpoint, sets: quick ? 10 : 50)

        return Figures(
            openReadClose: (orcMount, orcTmpfs), openReadCloseBesideWriter: orcBesideWriter, savesBesideReaders: saves, catPerSecond: (catMount, catTmpfs), warm16MiB: (warm16Mount, warm16Tmpfs), warm1MiBPerOpen: (warm1Mount, warm1Tmpfs),
            echoWrite: (echoMount.p50, echoMount.p99, echoTmpfs.p50), setToInotify: notify, cliSetToInotify: cli)
    }

    /// The floor's open + read + close (`FuseFloor`) and tmpfs's, the same small value in each,
    /// taken in alternating halves so drift in the machine's load falls on both.
    static func floor(quick: Bool) async throws -> (fuse: Cycle, tmpfs: Cycle, polls: String) {
        let small = Array("postgres://db2.internal:5432/app\n".utf8)
        let shm = "/dev/shm/kvg-bench-\(UUID().uuidString)"
        try writeFile(shm, small)
        defer { unlink(shm) }
        let cycles = quick ? 5_000 : 50_000
        return try await FuseFloor.withFloor(content: small) { path in
            var fuse: [Cycle] = [], tmpfs: [Cycle] = []
            for _ in 0..<2 {
                fuse.append(try openReadClose(path, cycles: cycles / 2, expect: small.count))
                tmpfs.append(try openReadClose(shm, cycles: cycles / 2, expect: small.count))
            }
            func both(_ halves: [Cycle]) -> Cycle {
                Cycle(p50: (halves[0].p50 + halves[1].p50) / 2, p99: max(halves[0].p99, halves[1].p99), mean: (halves[0].mean + halves[1].mean) / 2)
            }
            let polls = RequestReader.configured().windows.map { "polls \($0)" } ?? "read turn off"
            return (both(fuse), both(tmpfs), polls)
        }
    }

    static func waitForMount(_ path: String) async throws {
        // Mounted once the directory is on another device than its parent (named by path: the
        // agent may not have made the directory yet).
        let parentPath = (path as NSString).deletingLastPathComponent
        var parent = stat()
        guard stat(parentPath, &parent) == 0 else { throw BenchError("stat \(parentPath)") }
        for _ in 0..<400 {
            var here = stat()
            if stat(path, &here) == 0, here.st_dev != parent.st_dev { return }
            try await Task.sleep(for: .milliseconds(25))
        }
        throw BenchError("the mount at \(path) never appeared")
    }

    static func writeFile(_ path: String, _ bytes: [UInt8]) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw BenchError("open \(path): \(String(cString: strerror(errno)))") }
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let closed = close(fd)
        guard n == bytes.count, closed == 0 else { throw BenchError("write \(path): \(String(cString: strerror(errno)))") }
    }

    /// µs for one open + read + close of a small file (each cycle timed alone), after a warm-up.
    static func openReadClose(_ path: String, cycles: Int, expect: Int) throws -> Cycle {
        var buffer = [UInt8](repeating: 0, count: 4096)
        func once() throws {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw BenchError("open \(path): \(String(cString: strerror(errno)))") }
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            close(fd)
            guard n == expect else { throw BenchError("read \(n) bytes of \(path), expected \(expect)") }
        }
        for _ in 0..<100 { try once() }
        var samples = [Double](repeating: 0, count: cycles)
        for i in 0..<cycles {
            let start = DispatchTime.now().uptimeNanoseconds
            try once()
            samples[i] = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e3
        }
        let mean = samples.reduce(0, +) / Double(cycles)
        samples.sort()
        return Cycle(p50: Bench.percentile(samples, 0.5), p99: Bench.percentile(samples, 0.99), mean: mean)
    }

    /// Runs `body` while another thread saves `path` (open O_TRUNC, write, close: one record each)
    /// in a loop; returns what `body` returned and how many saves were made meanwhile.
    static func besideWriter<T>(_ path: String, _ body: () throws -> T) throws -> (T, Int) {
        let stop = Atomic<Bool>(false)
        let saves = Atomic<Int>(0)
        let failure = Mutex<String?>(nil)
        let done = DispatchSemaphore(value: 0)
        let writer = Thread {
            var i = 0
            while !stop.load(ordering: .relaxed) {
                do {
                    try writeFile(path, Array("other-\(i)\n".utf8))
                } catch {
                    failure.withLock { $0 = "\(error)" }
                    break
                }
                i += 1
                saves.wrappingAdd(1, ordering: .relaxed)
            }
            done.signal()
        }
        writer.start()
        let result = Result { try body() }
        stop.store(true, ordering: .relaxed)
        done.wait()
        if let message = failure.withLock({ $0 }) { throw BenchError("the concurrent writer failed: \(message)") }
        return (try result.get(), saves.load(ordering: .relaxed))
    }

    /// FUSE requests per open + read + close of a small key, by opcode: a separate agent logs every
    /// request (KVGOSSIP_FUSE_DEBUG=1, libfuse's `-d`) and the requests logged during `cycles` cycles
    /// are counted. RELEASE reaches the agent after close returned, so the count waits for all of them.
    static func requestsPerCycle(mode: Mode, cycles: Int = 200) async throws -> [(opcode: String, perCycle: Double)] {
        let dir = Bench.tempDirectory()
        let mountpoint = dir + "/kv"
        let log = dir + "/agent.err"
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let agent = try GossipBench.Agent(
            binary: GossipBench.binary(), directory: dir, name: "r", root: Bench.root, port: LoopbackPort.free(),
            peers: [], extra: ["--mount", mountpoint] + mode.arguments,
            environment: mode.environment.merging(["KVGOSSIP_FUSE_DEBUG": "1"]) { $1 }, stderrPath: log)
        defer { agent.stop() }
        try await waitForMount(mountpoint)
        let small = Array("postgres://db2.internal:5432/app\n".utf8)
        try writeFile(mountpoint + "/small", small)
        _ = try openReadClose(mountpoint + "/small", cycles: 10, expect: small.count)
        func opcodes() throws -> [String] {
            let text = try String(contentsOfFile: log, encoding: .utf8)
            return text.split(separator: "\n").compactMap { line in
                guard let range = line.range(of: "opcode: ") else { return nil }
                return String(line[range.upperBound...].prefix { $0 != " " })
            }
        }
        func count(_ opcode: String, in list: ArraySlice<String>) -> Int { list.filter { $0 == opcode }.count }
        // The warm-up's RELEASEs arrive asynchronously too: wait for them before taking the mark.
        var before = try opcodes()
        for _ in 0..<200 where count("RELEASE", in: before[...]) < count("OPEN", in: before[...]) {
            try await Task.sleep(for: .milliseconds(10))
            before = try opcodes()
        }
        _ = try openReadClose(mountpoint + "/small", cycles: cycles - 100, expect: small.count)  // 100 more in its warm-up
        var during = try opcodes().dropFirst(before.count)
        for _ in 0..<200 where count("RELEASE", in: during) < cycles {
            try await Task.sleep(for: .milliseconds(10))
            during = try opcodes().dropFirst(before.count)
        }
        var totals: [String: Int] = [:]
        for opcode in during { totals[opcode, default: 0] += 1 }
        return totals.sorted { $0.value > $1.value }.map { ($0.key, Double($0.value) / Double(cycles)) }
    }

    /// Seconds for `cat FILE > /dev/null` run `times` times back to back.
    static func catTime(_ path: String, times: Int) throws -> Double {
        try Bench.seconds {
            for _ in 0..<times {
                guard try spawnAndWait(["/bin/cat", path]) == 0 else { throw BenchError("cat \(path) failed") }
            }
        }
    }

    /// GB/s reading a 1 MiB file (the largest value a key may hold) in 128 KiB reads, after one read
    /// to warm the cache. `perOpen` MiB are read through each open (rewinding between MiBs), so 16
    /// is the "warm 16 MiB read" and 1 shows what the open itself costs.
    static func warmReadRate(_ path: String, bytes: Int, perOpen: Int, opens: Int) throws -> Double {
        var buffer = [UInt8](repeating: 0, count: 128 << 10)
        func pass() throws {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw BenchError("open \(path): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            for _ in 0..<perOpen {
                lseek(fd, 0, SEEK_SET)
                var total = 0
                while true {
                    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if n <= 0 { break }
                    total += n
                }
                guard total == bytes else { throw BenchError("read \(total) of \(bytes) bytes from \(path)") }
            }
        }
        try pass()
        let t = try Bench.seconds { for _ in 0..<opens { try pass() } }
        return Double(bytes * perOpen * opens) / t / 1e9
    }

    /// What `echo v > key` does: open with O_TRUNC, one write, close (the commit, durable on return).
    static func echoLatencies(_ path: String, writes: Int) throws -> (p50: Double, p99: Double) {
        var samples: [Double] = []
        for i in 0..<writes {
            let value = Array("value-\(i)\n".utf8)
            samples.append(try Bench.seconds { try writeFile(path, value) } * 1000)
        }
        samples.sort()
        return (Bench.percentile(samples, 0.5), Bench.percentile(samples, 0.99))
    }

    /// A watcher on the file: its IN_CLOSE_WRITE after a change made through the control API (the
    /// request `kvgossip set` sends), and whether a read right after the event returns the new value.
    static func setToInotify(client: ControlClient, mountpoint: String, sets: Int) async throws -> (p50: Double, p99: Double, staleReads: Int) {
        let path = mountpoint + "/bench/notify"
        try writeFile(path, Array("initial\n".utf8))
        let watcher = try Watcher(path)
        defer { watcher.close() }
        var samples: [Double] = []
        var stale = 0
        for i in 0..<sets {
            let value = "set-\(i)\n"
            watcher.drain()
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try await client.call({
                $0.key = "/bench/notify"
                $0.value = Data(value.utf8)
            }, op: .mint)
            try watcher.waitForCloseWrite()
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            if try readFile(path) != Array(value.utf8) { stale += 1 }
        }
        samples.sort()
        return (Bench.percentile(samples, 0.5), Bench.percentile(samples, 0.99), stale)
    }

    /// The same, timed from spawning `kvgossip set` (process start-up included).
    static func cliSetToInotify(socket: String, mountpoint: String, sets: Int) throws -> (p50: Double, p99: Double) {
        let path = mountpoint + "/bench/notify"
        let watcher = try Watcher(path)
        defer { watcher.close() }
        var samples: [Double] = []
        for i in 0..<sets {
            watcher.drain()
            let start = DispatchTime.now().uptimeNanoseconds
            guard try spawnAndWait([GossipBench.binary(), "set", "--control", socket, "/bench/notify", "cli-\(i)"]) == 0 else {
                throw BenchError("kvgossip set failed")
            }
            try watcher.waitForCloseWrite()
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        samples.sort()
        return (Bench.percentile(samples, 0.5), Bench.percentile(samples, 0.99))
    }

    static func readFile(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BenchError("open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        return n > 0 ? Array(buffer[0..<n]) : []
    }

    /// Runs a program with standard output on /dev/null; returns its exit status.
    static func spawnAndWait(_ argv: [String]) throws -> Int32 {
        let pid: pid_t
        do {
            pid = try Spawn(descriptors: [.open(1, path: "/dev/null", flags: O_WRONLY)]).start(argv[0], arguments: argv)
        } catch {
            throw BenchError("\(error)")
        }
        return WaitStatus.waitFor(pid).shellCode
    }

    /// One inotify watch for IN_CLOSE_WRITE on a file.
    final class Watcher {
        let fd: Int32

        init(_ path: String) throws {
            fd = inotify_init1(Int32(IN_CLOEXEC))
            guard fd >= 0, inotify_add_watch(fd, path, UInt32(IN_CLOSE_WRITE)) >= 0 else {
                throw BenchError("inotify on \(path): \(String(cString: strerror(errno)))")
            }
        }

        /// Blocks until the next IN_CLOSE_WRITE, at most 5 s.
        func waitForCloseWrite() throws {
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&pfd, 1, 5000) == 1 else { throw BenchError("no inotify event within 5 s") }
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                guard n > 0 else { continue }
                var offset = 0
                while offset + 16 <= n {
                    let mask = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self) }
                    let nameLength = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self) }
                    if mask & UInt32(IN_CLOSE_WRITE) != 0 { return }
                    offset += 16 + Int(nameLength)
                }
            }
        }

        /// Discards events already queued, so the next wait sees only what follows.
        func drain() {
            var buffer = [UInt8](repeating: 0, count: 4096)
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            while poll(&pfd, 1, 0) == 1 {
                _ = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            }
        }

        func close() { Glibc.close(fd) }
    }
}
