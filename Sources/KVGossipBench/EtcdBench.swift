import Foundation
import Glibc
import KVGossipTestSupport

/// KVGossip beside etcd on etcd's own ground, in one run: three etcd members on loopback (a put
/// through member 1, watches through the JSON gateway of members 2 and 3) and three KVGossip agents
/// with mounts (a file written on host 1, inotify and a read on hosts 2 and 3). Writes go in
/// alternating blocks, so drift in the machine's load falls on both alike; CPU is what the
/// processes of each system used during their own blocks.
enum EtcdBench {
    struct Side {
        var p50: Double, p99: Double  // ms, write → both watchers have the value
        var cpuMsPerWrite: Double
    }

    struct Figures {
        var etcd: Side
        var kvgossip: Side
        var staleReads: Int
        /// Pushes the three agents made per write (each a link session carrying the record).
        var pushesPerWrite: Double
    }

    /// The `etcd` binary on the PATH, nil when etcd is not installed.
    static func binary() -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/etcd" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static func compare(etcd: String, blocks: Int, perBlock: Int) async throws -> Figures {
        let dir = Bench.tempDirectory()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func port() -> Int { LoopbackPort.free() }

        let cluster = EtcdCluster(binary: etcd, directory: dir + "/etcd", clientPorts: (0..<3).map { _ in port() }, peerPorts: (0..<3).map { _ in port() })
        defer { cluster.stop() }
        try cluster.start()
        try await cluster.waitHealthy()
        let etcdSide = try EtcdWrites(cluster: cluster, key: "/bench/etcd")

        var agents: [GossipBench.Agent] = []
        defer { agents.forEach { $0.stop() } }
        let metricsPorts = (0..<3).map { _ in port() }
        let mounts = try await GossipBench.startMounted(&agents, ports: (0..<3).map { _ in port() }, in: dir) { i in
            ["--metrics-listen", "127.0.0.1:\(metricsPorts[i])"]
        }
        let kvgSide = try await MountWrites(mounts: mounts, key: "/bench/etcd")
        defer { kvgSide.close() }
        defer { etcdSide.close() }

        // A few writes each before timing: connections, caches and the Go runtime warmed up.
        for i in 0..<10 {
            _ = try etcdSide.write("warm-\(i)")
            _ = try kvgSide.write("warm-\(i)")
        }
        var etcdMs: [Double] = [], kvgMs: [Double] = []
        var etcdCPU = 0.0, kvgCPU = 0.0
        let etcdPids = cluster.members.map(\.processIdentifier)
        let agentPids = agents.map(\.process.processIdentifier)
        func cpu(_ pids: [Int32]) -> Double { pids.reduce(0) { $0 + ProcessCPU.seconds(ofTree: $1) } }
        var n = 0
        let pushesBefore = try pushes(metricsPorts)
        for _ in 0..<blocks {
            var before = cpu(etcdPids)
            for _ in 0..<perBlock {
                etcdMs.append(try etcdSide.write("e\(n)"))
                n += 1
            }
            etcdCPU += cpu(etcdPids) - before
            before = cpu(agentPids)
            for _ in 0..<perBlock {
                kvgMs.append(try kvgSide.write("k\(n)"))
                n += 1
            }
            kvgCPU += cpu(agentPids) - before
        }
        let pushed = try pushes(metricsPorts) - pushesBefore
        etcdMs.sort()
        kvgMs.sort()
        let writes = Double(blocks * perBlock)
        return Figures(
            etcd: Side(p50: Bench.percentile(etcdMs, 0.5), p99: Bench.percentile(etcdMs, 0.99), cpuMsPerWrite: etcdCPU * 1000 / writes),
            kvgossip: Side(p50: Bench.percentile(kvgMs, 0.5), p99: Bench.percentile(kvgMs, 0.99), cpuMsPerWrite: kvgCPU * 1000 / writes),
            staleReads: kvgSide.staleReads, pushesPerWrite: Double(pushed) / writes)
    }

    /// Pushes made so far by the agents serving metrics on these ports (`kvgossip_pushes_total`,
    /// every result).
    static func pushes(_ metricsPorts: [Int]) throws -> Int {
        try metricsPorts.reduce(0) { sum, port in
            let http = try EtcdHTTP(port: port, timeout: 5)
            defer { http.close() }
            let (status, body) = try http.request("GET", "/metrics")
            guard status == 200 else { throw BenchError("metrics on port \(port): HTTP \(status)") }
            let samples = String(decoding: body, as: UTF8.self).split(separator: "\n").filter { $0.hasPrefix("kvgossip_pushes_total{") }
            return sum + samples.compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0) { $0 + Int($1) }
        }
    }
}

/// Three etcd members on loopback, each with its own data directory under `directory`.
final class EtcdCluster {
    let binary: String
    let directory: String
    let clientPorts: [Int]
    let peerPorts: [Int]
    private(set) var members: [Process] = []

    init(binary: String, directory: String, clientPorts: [Int], peerPorts: [Int]) {
        self.binary = binary
        self.directory = directory
        self.clientPorts = clientPorts
        self.peerPorts = peerPorts
    }

    func start() throws {
        let initial = peerPorts.indices.map { "m\($0)=http://127.0.0.1:\(peerPorts[$0])" }.joined(separator: ",")
        for i in clientPorts.indices {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: binary)
            let client = "http://127.0.0.1:\(clientPorts[i])", peer = "http://127.0.0.1:\(peerPorts[i])"
            p.arguments = [
                "--name", "m\(i)", "--data-dir", "\(directory)/m\(i)",
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", initial, "--initial-cluster-state", "new", "--initial-cluster-token", "kvg-bench",
                "--logger", "zap", "--log-level", "error",
            ]
            p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
            p.standardError = FileHandle(forWritingAtPath: "/dev/null")
            try p.run()
            members.append(p)
        }
    }

    /// Asks every member's /health until each says it is healthy (it has a leader).
    func waitHealthy() async throws {
        for port in clientPorts {
            let healthy = try await Readiness.waitAsync(timeout: .seconds(30)) {
                let http = try EtcdHTTP(port: port, timeout: 2)
                defer { http.close() }
                let (status, body) = try http.request("GET", "/health")
                return status == 200 && String(decoding: body, as: UTF8.self).contains(#""health":"true""#)
            }
            guard healthy else { throw BenchError("etcd member on port \(port) never answered healthy") }
        }
    }

    /// Signals every member first: a member stopped alone waits for the others while it hands on
    /// leadership, and the last one has no quorum.
    func stop() {
        for p in members where p.isRunning { kill(p.processIdentifier, SIGTERM) }
        for p in members { p.stop(signal: SIGTERM, grace: 5) }
        members = []
    }
}

/// Puts through member 1; two watches, through members 2 and 3, note when each value arrives.
final class EtcdWrites {
    let put: EtcdHTTP
    let watches: [EtcdWatch]
    let arrivals = Arrivals(count: 2)
    let arrived = DispatchSemaphore(value: 0)
    let keyBase64: String

    init(cluster: EtcdCluster, key: String) throws {
        keyBase64 = Data(key.utf8).base64EncodedString()
        put = try EtcdHTTP(port: cluster.clientPorts[0], timeout: 10)
        var opened: [EtcdWatch] = []
        for (k, port) in cluster.clientPorts.dropFirst().enumerated() {
            opened.append(try EtcdWatch(port: port, keyBase64: keyBase64) { [arrivals, arrived] value in
                arrivals.note(value, at: k)
                arrived.signal()
            })
        }
        watches = opened
    }

    /// ms from sending the put until it is answered and both watchers have the value.
    func write(_ value: String) throws -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        let body = #"{"key":"\#(keyBase64)","value":"\#(Data(value.utf8).base64EncodedString())"}"#
        let (status, answer) = try put.request("POST", "/v3/kv/put", json: body)
        guard status == 200 else { throw BenchError("etcd put: HTTP \(status) \(String(decoding: answer, as: UTF8.self))") }
        while arrivals.lastArrival(of: value) == nil {
            guard arrived.wait(timeout: .now() + 10) == .success else {
                throw BenchError("etcd: \(value) did not reach every watcher within 10 s (\(arrivals.missing(value)))")
            }
        }
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
    }

    func close() {
        put.close()
        watches.forEach { $0.close() }
    }
}

/// One streaming watch of a key through etcd's JSON gateway (POST /v3/watch): a thread reads the
/// stream of JSON lines and hands each put value to `onValue`.
final class EtcdWatch: @unchecked Sendable {
    private let http: EtcdHTTP
    private let finished = DispatchSemaphore(value: 0)

    /// Returns once etcd has confirmed the watch is created.
    init(port: Int, keyBase64: String, onValue: @escaping @Sendable (String) -> Void) throws {
        http = try EtcdHTTP(port: port, timeout: 3600)
        let head = try http.send("POST", "/v3/watch", json: #"{"create_request":{"key":"\#(keyBase64)"}}"#)
        guard head.status == 200, head.chunked else { throw BenchError("etcd watch: HTTP \(head.status)") }
        var lines = EtcdLines()
        while true {
            guard let line = try lines.next(from: http) else { throw BenchError("etcd watch: the stream ended before the watch was created") }
            if line.result?.created == true { break }
        }
        Thread.detachNewThread { [http, finished, lines] in
            defer { finished.signal() }
            var lines = lines
            while let line = try? lines.next(from: http) {
                for event in line.result?.events ?? [] {
                    if let v = event.kv?.value, let bytes = Data(base64Encoded: v) { onValue(String(decoding: bytes, as: UTF8.self)) }
                }
            }
        }
    }

    /// Ends the stream (the reading thread sees it closed) and waits for the thread.
    func close() {
        shutdown(http.socket.fd, Int32(SHUT_RDWR))
        finished.wait()
        http.close()
    }
}

/// The JSON lines of a watch stream, gathered across chunks.
struct EtcdLines {
    struct Line: Decodable {
        struct Result: Decodable {
            var created: Bool?
            var events: [Event]?
        }
        struct Event: Decodable { var kv: KeyValue? }
        struct KeyValue: Decodable { var value: String? }
        var result: Result?
    }

    private var pending: [UInt8] = []

    /// The next line; nil when the stream ended.
    mutating func next(from http: EtcdHTTP) throws -> Line? {
        while true {
            if let end = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(pending[..<end])
                pending.removeFirst(end + 1)
                if line.allSatisfy({ $0 == 32 || $0 == 13 }) { continue }
                return try JSONDecoder().decode(Line.self, from: Data(line))
            }
            guard let chunk = try http.nextChunk() else { return nil }
            pending += chunk
        }
    }
}

/// HTTP/1.1 over one kept-alive loopback connection, as much as etcd's JSON gateway needs:
/// requests with a JSON body, answers framed by Content-Length or chunked.
final class EtcdHTTP: @unchecked Sendable {
    let socket: RawSocket
    private var buffer: [UInt8] = []

    init(port: Int, timeout: TimeInterval) throws {
        guard let s = RawSocket(tcpPort: port, timeout: timeout) else { throw BenchError("connect to 127.0.0.1:\(port)") }
        socket = s
    }

    func close() { shutdown(socket.fd, Int32(SHUT_RDWR)) }

    /// Sends a request and reads the head of its answer.
    func send(_ method: String, _ path: String, json: String? = nil) throws -> (status: Int, length: Int?, chunked: Bool) {
        let body = json.map { Array($0.utf8) } ?? []
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        if json != nil { head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n" }
        guard socket.send(Array((head + "\r\n").utf8) + body) else { throw BenchError("HTTP send \(path)") }
        let status = try line().split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        var length: Int?, chunked = false
        while case let field = try line(), !field.isEmpty {
            let parts = field.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard parts.count == 2 else { continue }
            if parts[0] == "content-length" { length = Int(parts[1]) }
            if parts[0] == "transfer-encoding" && parts[1].contains("chunked") { chunked = true }
        }
        return (status, length, chunked)
    }

    /// One request and its whole answer.
    func request(_ method: String, _ path: String, json: String? = nil) throws -> (status: Int, body: [UInt8]) {
        let head = try send(method, path, json: json)
        if head.chunked {
            var body: [UInt8] = []
            while let chunk = try nextChunk() { body += chunk }
            return (head.status, body)
        }
        return (head.status, try bytes(head.length ?? 0))
    }

    /// The next chunk of a chunked answer; nil after the last.
    func nextChunk() throws -> [UInt8]? {
        guard let size = Int(try line().split(separator: ";").first ?? "", radix: 16) else { throw BenchError("HTTP: bad chunk size") }
        let data = try bytes(size)
        _ = try line()
        return size == 0 ? nil : data
    }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        var n: Int
        repeat { n = chunk.withUnsafeMutableBytes { recv(socket.fd, $0.baseAddress, $0.count, 0) } } while n < 0 && errno == EINTR
        guard n > 0 else { throw BenchError(n == 0 ? "HTTP: connection closed" : "HTTP: \(String(cString: strerror(errno)))") }
        buffer += chunk[0..<n]
    }

    private func line() throws -> String {
        while true {
            if let end = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let text = String(decoding: buffer[..<end], as: UTF8.self).trimmingCharacters(in: ["\r"])
                buffer.removeFirst(end + 1)
                return text
            }
            guard buffer.count < 64 << 10 else { throw BenchError("HTTP: line too long") }
            try fill()
        }
    }

    private func bytes(_ count: Int) throws -> [UInt8] {
        guard count <= 16 << 20 else { throw BenchError("HTTP: body too long") }
        while buffer.count < count { try fill() }
        defer { buffer.removeFirst(count) }
        return Array(buffer[..<count])
    }
}
