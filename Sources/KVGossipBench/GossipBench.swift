import Foundation
import KVGossipControl
import KVGossipCore
import KVGossipSerf

/// Real agent processes on loopback (static peers), driven through their control sockets:
/// write on one, time until every other one's watch reports the value.
enum GossipBench {
    final class Agent {
        let process = Process()
        let socket: String
        let port: Int

        init(binary: String, directory: String, name: String, root: SigningKey, port: Int, peers: [Int], extra: [String] = []) throws {
            socket = "\(directory)/\(name).sock"
            self.port = port
            let keyFile = "\(directory)/root.key"
            if !FileManager.default.fileExists(atPath: keyFile) {
                _ = FileManager.default.createFile(atPath: keyFile, contents: Data(SecretKeyFile.render(root).utf8), attributes: [.posixPermissions: 0o600])
            }
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = [
                "agent", "--data", "\(directory)/\(name)", "--root", root.publicKey.text, "--key", keyFile, "--control", socket,
                "--listen", "127.0.0.1:\(port)", "--name", name, "--no-serf", "--sync-interval", "3600", "--log-level", "warning",
            ] + peers.flatMap { ["--peer", "127.0.0.1:\($0)"] } + extra
            process.standardError = FileHandle(forWritingAtPath: "/dev/null")
            var env = ProcessInfo.processInfo.environment
            env["SWIFT_BACKTRACE"] = "enable=no"
            process.environment = env
            try process.run()
        }

        /// Waits up to 5 s for the control socket to answer.
        func connect() async throws -> ControlClient {
            for _ in 0..<200 {
                if let client = try? await ControlClient.connect(.unix(socket)) { return client }
                try await Task.sleep(for: .milliseconds(25))
            }
            throw BenchError("agent \(socket) did not start")
        }

        func stop() {
            kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
        }
    }

    static func binary() -> String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("kvgossip").path
    }

    /// p50 and p99 (ms) from a write on agent 0 until all other agents' watches saw it.
    static func writeToVisible(agents n: Int, writes: Int) async throws -> (p50: Double, p99: Double) {
        let dir = Bench.tempDirectory()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ports = (0..<n).map { _ in 30_000 + Int.random(in: 0..<20_000) }
        let agents = try (0..<n).map { i in
            try Agent(binary: binary(), directory: dir, name: "n\(i)", root: Bench.root, port: ports[i], peers: ports.indices.filter { $0 != i }.map { ports[$0] })
        }
        defer { agents.forEach { $0.stop() } }
        var clients: [ControlClient] = []
        for a in agents { clients.append(try await a.connect()) }
        // One watch per remote agent; each yields the value it sees.
        var streams: [AsyncThrowingStream<ControlResponse, Error>.AsyncIterator] = []
        for c in clients.dropFirst() {
            let (_, responses) = try await c.open(op: .watch) { $0.key = "/bench/latency" }
            var it = responses.makeAsyncIterator()
            _ = try await it.next()  // the initial state
            streams.append(it)
        }
        var samples: [Double] = []
        for i in 0..<writes {
            let value = "v\(i)"
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try await clients[0].call({
                $0.key = "/bench/latency"
                $0.value = Data(value.utf8)
            }, op: .mint)
            for k in streams.indices {
                var arrived = false
                while let r = try await streams[k].next() {
                    if r.event?.record?.value == Data(value.utf8) {
                        arrived = true
                        break
                    }
                }
                if !arrived { throw BenchError("agent \(k + 1) never saw write \(i)") }
            }
            if DispatchTime.now().uptimeNanoseconds - start > 10_000_000_000 { throw BenchError("write \(i) took over 10 s to spread") }
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        for c in clients { await c.close() }
        samples.sort()
        return (Bench.percentile(samples, 0.5), Bench.percentile(samples, 0.99))
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
        let ports = (0..<4).map { _ in 30_000 + Int.random(in: 0..<20_000) }
        let a = EmbeddedSerf(EmbeddedSerfConfiguration(
            nodeName: "anchor-a", directory: dir + "/a", bindPort: ports[0], rpcPort: ports[1], syncPort: 1, profile: "lan"))
        let b = EmbeddedSerf(EmbeddedSerfConfiguration(
            nodeName: "anchor-b", directory: dir + "/b", bindPort: ports[2], rpcPort: ports[3], syncPort: 1,
            join: ["127.0.0.1:\(ports[0])"], profile: "lan"))
        let rpcA = try await a.start()
        let rpcB = try await b.start()
        defer {
            Task {
                await a.stop()
                await b.stop()
            }
        }
        let sender = try await SerfRPCClient.connect(to: rpcA)
        let receiver = try await SerfRPCClient.connect(to: rpcB)
        var incoming = try await receiver.stream(type: "user").makeAsyncIterator()
        var samples: [Double] = []
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
        await a.stop()
        await b.stop()
        samples.sort()
        return (Bench.percentile(samples, 0.5), Bench.percentile(samples, 0.99))
    }
}
