import Foundation
import Glibc
import KVGossipControl
import KVGossipCore
import KVGossipTestSupport

/// Hosts in network namespaces of their own on one bridge (NetnsLab), each running what a real
/// host runs: `kvgossip agent` with its own spawned Serf bound to the host's address (every host
/// joins host 0), a FUSE mount, a data directory and a control socket. Processes enter a host with
/// `nsenter --net=…` only, so the mounts and the (unix) control sockets stay visible to this process
/// in the root network namespace. Used from one task, and from a signal handler that ends the process.
final class NamespaceHosts: @unchecked Sendable {
    let lab: NetnsLab
    let count: Int
    let directory: String
    private(set) var agents: [Process] = []
    private(set) var clients: [ControlClient] = []

    static let syncPort = 7947
    static let serfPort = 7946
    /// Serf's RPC in each host: its own loopback, so every host can use the same port.
    static let serfRPC = "127.0.0.1:7373"
    /// `/metrics` in each host, on its own loopback as well.
    static let metricsPort = 9947

    func data(_ i: Int) -> String { "\(directory)/h\(i)" }
    func mount(_ i: Int) -> String { "\(directory)/m\(i)" }
    func socket(_ i: Int) -> String { "\(directory)/h\(i).sock" }
    func log(_ i: Int) -> String { "\(directory)/h\(i).log" }

    init(count: Int) throws {
        lab = try NetnsLab(count: count)
        self.count = count
        directory = Bench.tempDirectory()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    /// Starts every agent (each generates a node key of its own in its data directory: links are
    /// limited per node key, so hosts sharing one would crowd each other out).
    func start(logLevel: String) throws {
        for i in 0..<count {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
            var arguments = lab.enter(i) + [
                GossipBench.binary(), "agent", "--data", data(i), "--root", Bench.root.publicKey.text, "--control", socket(i),
                "--mount", mount(i), "--listen", "\(lab.ip(i)):\(Self.syncPort)", "--name", "h\(i)", "--serf-spawn",
                "--serf-bind", "\(lab.ip(i)):\(Self.serfPort)", "--serf-rpc", Self.serfRPC, "--log-level", logLevel,
                "--metrics-listen", "127.0.0.1:\(Self.metricsPort)",
            ]
            if i > 0 { arguments += ["--join", "\(lab.ip(0)):\(Self.serfPort)"] }
            p.arguments = arguments
            _ = FileManager.default.createFile(atPath: log(i), contents: nil)
            p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
            p.standardError = FileHandle(forWritingAtPath: log(i))
            var env = ProcessInfo.processInfo.environment
            env["SWIFT_BACKTRACE"] = "enable=no"
            p.environment = env
            try p.run()  // nsenter execs the agent: this is the agent's pid
            agents.append(p)
        }
    }

    /// Waits (by asking) until every agent answers `status` and its mount answers a stat; then
    /// connects a control client to each.
    func waitUp(timeout: Duration) async throws {
        for i in 0..<count {
            let pid = agents[i].processIdentifier
            let up = try await Readiness.waitAsync(timeout: timeout, every: .milliseconds(100)) {
                guard agents[i].isRunning else { throw BenchError("agent h\(i) exited") }
                return Readiness.controlAnswers(at: socket(i), pid: pid) && Readiness.mountAnswers(at: mount(i))
            }
            guard up else { throw BenchError("host h\(i) never came up: \(tail(i))") }
            clients.append(try await ControlClient.connect(.unix(socket(i))))
        }
    }

    func status(_ i: Int) async throws -> StatusInfo {
        guard let s = try await clients[i].call({ _ in }, op: .status).status else { throw BenchError("h\(i): status without a status") }
        return s
    }

    /// Lets every host write everything: a grant from the root to its node key (which also admits
    /// it as a peer).
    func grantEveryone() async throws {
        for i in 0..<count {
            let grant = try Grant(
                cluster: Bench.root.publicKey, issuer: Bench.root, issuee: try PublicKey(text: try await status(i).node),
                patterns: [try Pattern("/**")], mayDelegate: false, notBefore: Bench.nowMs - 60_000, expires: nil,
                nonce: secureRandomBytes(Grant.nonceByteCount))
            let answer = try await clients[i].call({ $0.grants = [Data(grant.encoded)] }, op: .grantsAdd)
            guard answer.ok else { throw BenchError("h\(i): grants-add: \(answer.error.map(\.description) ?? "?")") }
        }
    }

    /// Peers each host lists now.
    func peerCounts() async throws -> [Int] {
        var out: [Int] = []
        for i in 0..<count { out.append(try await status(i).peers.count) }
        return out
    }

    func treeHashes() async throws -> [String] {
        var out: [String] = []
        for i in 0..<count { out.append(try await status(i).treeHash) }
        return out
    }

    /// The sum of a counter family's samples (e.g. `kvgossip_pushes_total`, every result) over all
    /// hosts, read with curl inside each host's namespace.
    func counter(_ family: String) throws -> Int {
        try (0..<count).reduce(0) { sum, i in
            let text = try NetnsLab.sh("nsenter \(lab.enter(i)[0]) curl -sf http://127.0.0.1:\(Self.metricsPort)/metrics")
            let samples = text.split(separator: "\n").filter { $0.hasPrefix(family + "{") || $0.hasPrefix(family + " ") }
            return sum + samples.compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0) { $0 + Int($1) }
        }
    }

    /// The pid of host `i`'s Serf (from the pid file the agent keeps), nil when it is not running.
    func serfPid(_ i: Int) -> Int32? {
        guard let text = try? String(contentsOfFile: data(i) + "/serf/serf.pid", encoding: .utf8),
            let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)),
            ProcFile.read("/proc/\(pid)/cmdline")?.contains("serf") == true
        else { return nil }
        return pid
    }

    /// The end of host `i`'s log, for error messages.
    func tail(_ i: Int) -> String {
        String((ProcFile.read(log(i)) ?? "").suffix(1500))
    }

    /// Stops everything this set started, by pid, whatever state it is in (see `stopProcesses`),
    /// then removes the directory unless kept. The namespaces go with the lab.
    func tearDown(keepDirectory: Bool) async {
        for c in clients { await c.close() }
        clients = []
        stopProcesses()
        if !keepDirectory { try? FileManager.default.removeItem(atPath: directory) }
    }

    /// Agents (all signalled first, so they stop side by side), Serfs an agent left behind, mounts
    /// still there. Synchronous, so a signal handler can call it too.
    func stopProcesses() {
        let serfs = (0..<count).compactMap(serfPid)
        for p in agents where p.isRunning { kill(p.processIdentifier, SIGTERM) }
        for p in agents { p.stop(signal: SIGTERM, grace: 15) }
        agents = []
        for pid in serfs where ProcFile.read("/proc/\(pid)/cmdline")?.contains("serf") == true {
            kill(pid, SIGKILL)
        }
        let mounted = ProcFile.read("/proc/self/mounts") ?? ""
        for i in 0..<count where mounted.contains(" \(mount(i)) ") {
            _ = try? NetnsLab.sh("fusermount3 -u -z \(mount(i)) 2>/dev/null || umount -l \(mount(i))")
        }
    }

    /// Stops on SIGINT or SIGTERM as well: processes and namespaces would outlive this process,
    /// which then exits without running its deinitializers. Returns the sources to cancel.
    func stopOnSignals() -> [any DispatchSourceSignal] {
        [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [weak self] in
                guard let self else { return }
                print("hosts: signal \(number): stopping the hosts; logs in \(self.directory)")
                self.stopProcesses()
                self.lab.tearDown()
                exit(128 + number)
            }
            source.resume()
            return source
        }
    }
}

/// The most sync connections each host's agent held at once, sampled from the kernel's socket
/// table of the host's namespace (/proc/PID/net/tcp): sockets to or from the sync port that the
/// agent holds open (established, opening, or closed by the peer and not yet by the agent).
final class ConnectionSampler: @unchecked Sendable {
    private let pids: [Int32]
    private let lock = NSLock()
    private var maxima: [Int]
    private var samples = 0
    private var running = true
    private var interval: TimeInterval
    private let done = DispatchSemaphore(value: 0)

    init(pids: [Int32], every interval: TimeInterval) {
        self.pids = pids
        self.interval = interval
        maxima = Array(repeating: 0, count: pids.count)
        Thread.detachNewThread { [self] in
            while let pause = lock.withLock({ running ? self.interval : nil }) {
                let now = pids.map { Self.syncSockets(of: $0) }
                lock.withLock {
                    for i in now.indices { maxima[i] = max(maxima[i], now[i]) }
                    samples += 1
                }
                usleep(UInt32(pause * 1_000_000))
            }
            done.signal()
        }
    }

    /// Samples `interval` seconds apart from now on. Each sample reads every host's socket table,
    /// CPU taken from the machine the hosts share, so the timed writes are sampled sparsely.
    func sample(every interval: TimeInterval) {
        lock.withLock { self.interval = interval }
    }

    /// Stops sampling (if still running); returns the maximum per host and how many samples were taken.
    func finish() -> (maxima: [Int], samples: Int) {
        let wasRunning = lock.withLock { () -> Bool in
            defer { running = false }
            return running
        }
        if wasRunning { done.wait() }
        return lock.withLock { (maxima, samples) }
    }

    /// Sync-port sockets in states an open descriptor holds: ESTABLISHED 01, SYN_SENT 02,
    /// SYN_RECV 03, CLOSE_WAIT 08 (LISTEN and TIME_WAIT are not connections the agent holds).
    static func syncSockets(of pid: Int32) -> Int {
        let port = String(format: ":%04X", NamespaceHosts.syncPort)
        var n = 0
        for table in ["tcp", "tcp6"] {
            for line in (ProcFile.read("/proc/\(pid)/net/\(table)") ?? "").split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                guard fields.count > 3, ["01", "02", "03", "08"].contains(fields[3]),
                    fields[1].hasSuffix(port) || fields[2].hasSuffix(port)
                else { continue }
                n += 1
            }
        }
        return n
    }
}
