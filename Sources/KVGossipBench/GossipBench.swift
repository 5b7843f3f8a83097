import CFuse3
import Foundation
import Glibc
import KVGossipControl
import KVGossipCore
import KVGossipSerf
import KVGossipTestSupport
import Synchronization

/// Real agent processes on loopback (static peers) with mounts, driven through their control
/// sockets: write on one, time until every other one shows the value.
enum GossipBench {
    final class Agent {
        let process = Process()
        let socket: String
        let port: Int
        /// The agent's mount, when `extra` names one (`--mount`).
        let mount: String?

        /// `stderrPath`: where the agent's standard error goes (/dev/null by default); `environment`:
        /// variables added to the agent's environment (KVGOSSIP_FUSE_DEBUG=1 to log every request).
        init(
            binary: String, directory: String, name: String, root: SigningKey, port: Int, peers: [Int], extra: [String] = [],
            environment: [String: String] = [:], stderrPath: String? = nil
        ) throws {
            socket = "\(directory)/\(name).sock"
            self.port = port
            mount = extra.firstIndex(of: "--mount").flatMap { extra.indices.contains($0 + 1) ? extra[$0 + 1] : nil }
            let keyFile = "\(directory)/root.key"
            if !FileManager.default.fileExists(atPath: keyFile) {
                _ = FileManager.default.createFile(atPath: keyFile, contents: Data(SecretKeyFile.render(root).utf8), attributes: [.posixPermissions: 0o600])
            }
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = [
                "agent", "--data", "\(directory)/\(name)", "--root", root.publicKey.text, "--key", keyFile, "--control", socket,
                "--listen", "127.0.0.1:\(port)", "--name", name, "--no-serf", "--sync-interval", "3600", "--log-level", "warning",
            ] + peers.flatMap { ["--peer", "127.0.0.1:\($0)"] } + extra
            if let stderrPath { _ = FileManager.default.createFile(atPath: stderrPath, contents: nil) }
            process.standardError = FileHandle(forWritingAtPath: stderrPath ?? "/dev/null")
            var env = ProcessInfo.processInfo.environment
            env["SWIFT_BACKTRACE"] = "enable=no"
            env.merge(environment) { _, added in added }
            process.environment = env
            try process.run()
        }

        /// Waits up to `timeoutSeconds` for the control socket to answer.
        func connect(timeoutSeconds: Double = 5) async throws -> ControlClient {
            for _ in 0..<Int(timeoutSeconds * 40) {
                if let client = try? await ControlClient.connect(.unix(socket)) { return client }
                try await Task.sleep(for: .milliseconds(25))
            }
            throw BenchError("agent \(socket) did not start")
        }

        /// Stops the agent and detaches its mount if it is still there: an agent that died leaves
        /// its mount behind, answering ENOTCONN, and the run's directory could not be removed
        /// (after a clean exit the mount is gone and the detach fails harmlessly).
        func stop() {
            kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
            if let mount { _ = umount2(mount, Int32(MNT_DETACH)) }
        }
    }

    static func binary() -> String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("kvgossip").path
    }

    /// One agent per port, each with every other as a static peer and a mount at `dir`/m<i>;
    /// returns the mounts once all are mounted. Agents are appended to `agents` one by one, so the
    /// caller stops the ones started even if a later one fails.
    static func startMounted(_ agents: inout [Agent], ports: [Int], in dir: String, extra: (Int) -> [String] = { _ in [] }) async throws -> [String] {
        let mounts = ports.indices.map { "\(dir)/m\($0)" }
        for i in ports.indices {
            agents.append(try Agent(
                binary: binary(), directory: dir, name: "n\(i)", root: Bench.root, port: ports[i],
                peers: ports.indices.filter { $0 != i }.map { ports[$0] }, extra: ["--mount", mounts[i]] + extra(i)))
        }
        for m in mounts { try await MountBench.waitForMount(m) }
        return mounts
    }

    struct Latencies {
        var visible: (p50: Double, p99: Double)
        var inotify: (p50: Double, p99: Double)
        var staleReads: Int
    }

    /// Agents with mounts; writes on agent 0 through its control API. First pass: until every other
    /// agent's control-API watch reports the value. Second pass: until an inotify watch on the
    /// key's file in every other agent's mount sees IN_CLOSE_WRITE (then each file is read back).
    static func latencies(agents n: Int, writes: Int) async throws -> Latencies {
        let dir = Bench.tempDirectory()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var agents: [Agent] = []
        defer { agents.forEach { $0.stop() } }
        let mounts = try await startMounted(&agents, ports: (0..<n).map { _ in LoopbackPort.free() }, in: dir)
        var clients: [ControlClient] = []
        for a in agents { clients.append(try await a.connect()) }
        defer { Task { [clients] in for c in clients { await c.close() } } }
        let key = "/bench/latency"
        func mint(_ value: String) async throws {
            _ = try await clients[0].call({
                $0.key = key
                $0.value = Data(value.utf8)
            }, op: .mint)
        }

        // One watch per remote agent; a task per watch notes when each value arrived.
        let arrivals = Arrivals(count: n - 1)
        var consumers: [Task<Void, Never>] = []
        for (k, c) in clients.dropFirst().enumerated() {
            let (_, responses) = try await c.open(op: .watch) { $0.key = key }
            consumers.append(Task {
                do {
                    for try await r in responses {
                        if let value = r.event?.record?.value { arrivals.note(String(decoding: value, as: UTF8.self), at: k) }
                    }
                } catch {}
            })
        }
        defer { consumers.forEach { $0.cancel() } }
        var visible: [Double] = []
        for i in 0..<writes {
            let value = "v\(i)"
            let start = DispatchTime.now().uptimeNanoseconds
            try await mint(value)
            var last: UInt64?
            while last == nil {
                last = arrivals.lastArrival(of: value)
                if last == nil {
                    if DispatchTime.now().uptimeNanoseconds - start > 10_000_000_000 {
                        throw BenchError("write \(i) did not reach every agent within 10 s (\(arrivals.missing(value)))")
                    }
                    try await Task.sleep(for: .microseconds(200))
                }
            }
            visible.append(Double(last! - start) / 1e6)
        }

        // A watch reports a value when the store has it, a little before the mount's replay: let
        // every mount show the last one, so no replay of the first pass lands in the second.
        let files = mounts.dropFirst().map { $0 + key }
        let lastValue = Array("v\(writes - 1)".utf8)
        for f in files {
            for _ in 0..<500 where (try? MountBench.readFile(f)) != lastValue { try await Task.sleep(for: .milliseconds(10)) }
            guard (try? MountBench.readFile(f)) == lastValue else { throw BenchError("\(f) never showed the last value of the first pass") }
        }
        try await Task.sleep(for: .milliseconds(100))
        let watchers = try files.map { try MountBench.Watcher($0) }
        defer { watchers.forEach { $0.close() } }
        var inotify: [Double] = []
        var stale = 0
        for i in 0..<writes {
            let value = "w\(i)"
            watchers.forEach { $0.drain() }
            let start = DispatchTime.now().uptimeNanoseconds
            try await mint(value)
            for w in watchers { try w.waitForCloseWrite() }
            inotify.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            for f in files where try MountBench.readFile(f) != Array(value.utf8) { stale += 1 }
        }
        visible.sort()
        inotify.sort()
        return Latencies(
            visible: (Bench.percentile(visible, 0.5), Bench.percentile(visible, 0.99)),
            inotify: (Bench.percentile(inotify, 0.5), Bench.percentile(inotify, 0.99)), staleReads: stale)
    }
}

/// When each watched agent first reported each value.
final class Arrivals: Sendable {
    private let seen: Mutex<[[String: UInt64]]>

    init(count: Int) {
        seen = Mutex(Array(repeating: [:], count: count))
    }

    func note(_ value: String, at agent: Int) {
        let now = DispatchTime.now().uptimeNanoseconds
        seen.withLock { if $0[agent][value] == nil { $0[agent][value] = now } }
    }

    /// The time the last agent reported `value`, once all have.
    func lastArrival(of value: String) -> UInt64? {
        seen.withLock { all in
            var latest: UInt64 = 0
            for agent in all {
                guard let t = agent[value] else { return nil }
                latest = max(latest, t)
            }
            return latest
        }
    }

    func missing(_ value: String) -> String {
        seen.withLock { all in all.indices.filter { all[$0][value] == nil }.map { "agent \($0 + 1)" }.joined(separator: ", ") }
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// The anchor for gossip latency: Serf's own user events between two local Serf agents.
enum SerfAnchor {
    static func userEventLatency(events: Int) async throws -> (p50: Double, p99: Double) {
        let dir = Bench.tempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ports = (0..<4).map { _ in LoopbackPort.free() }
        let a = EmbeddedSerf(EmbeddedSerfConfiguration(
            nodeName: "anchor-a", directory: dir + "/a", bindPort: ports[0], rpcPort: ports[1], syncPort: 1, profile: "lan"))
        let b = EmbeddedSerf(EmbeddedSerfConfiguration(
            nodeName: "anchor-b", directory: dir + "/b", bindPort: ports[2], rpcPort: ports[3], syncPort: 1,
            join: ["127.0.0.1:\(ports[0])"], profile: "lan"))
        var samples: [Double] = []
        do {
            let rpcA = try await a.start()
            let rpcB = try await b.start()
            let sender = try await SerfRPCClient.connect(to: rpcA)
            let receiver = try await SerfRPCClient.connect(to: rpcB)
            var incoming = try await receiver.stream(type: "user").makeAsyncIterator()
            for i in 0..<events {
                let name = "bench-\(i)"
                let start = DispatchTime.now().uptimeNanoseconds
                try await sender.userEvent(name: name, payload: [])
                while let event = try await incoming.next() {
                    if case .user(let e) = event, e.name == name { break }
                }
                samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            }
            await sender.close()
            await receiver.close()
        } catch {
            // Stopped here, not in a task that might not run before the process exits.
            await a.stop()
            await b.stop()
            throw error
        }
        await a.stop()
        await b.stop()
        samples.sort()
        return (Bench.percentile(samples, 0.5), Bench.percentile(samples, 0.99))
    }
}
