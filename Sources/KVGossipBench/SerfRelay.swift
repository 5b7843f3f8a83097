import Foundation
import Glibc
import KVGossipSerf
import KVGossipTestSupport
import Synchronization

/// `kvgossip-bench serf-relay HOST:PORT SECRETS`: run by the `hosts` section inside a host's network
/// namespace, where that host's Serf RPC is reachable (the bench itself stays in the root
/// namespace); SECRETS is the spawned Serf's secrets file, whose `rpc_auth` the RPC asks for. It prints `ready` once its user-event stream is open, then `got NAME NANOS` for each
/// user event its Serf delivers; each line NAME read on standard input it sends as a user event
/// and answers `sent NAME NANOS`. NANOS is the monotonic clock, which all namespaces share.
enum SerfRelay {
    static func run(rpc: String, secrets: String) async throws {
        guard let address = SerfRPCAddress(parsing: rpc) else { throw BenchError("serf-relay: not HOST:PORT: \(rpc)") }
        var connected: SerfRPCClient?
        _ = try? await Readiness.waitAsync(timeout: .seconds(120), every: .milliseconds(200)) {
            let fields = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: secrets))) as? [String: Any]
            connected = try await SerfRPCClient.connect(to: address, authKey: fields?["rpc_auth"] as? String)
            return true
        }
        guard let client = connected else { throw BenchError("serf-relay: no Serf RPC at \(rpc)") }
        let stream = try await client.stream(type: "user")
        let names = AsyncStream<String> { lines in
            Thread.detachNewThread {
                while let line = readLine() { lines.yield(line) }
                lines.finish()
            }
        }
        say("ready")
        let events = Task {
            do {
                for try await event in stream {
                    if case .user(let e) = event { say("got \(e.name) \(DispatchTime.now().uptimeNanoseconds)") }
                }
            } catch {}
        }
        for await name in names {
            let start = DispatchTime.now().uptimeNanoseconds
            try await client.userEvent(name: name, payload: [])
            say("sent \(name) \(start)")
        }
        events.cancel()
        await client.close()
    }

    private static let output = Mutex(())

    private static func say(_ line: String) {
        output.withLock { _ in FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
    }
}

/// One `serf-relay` per host, started in the host's namespace: sends user events through host 0's
/// Serf and notes when each host's Serf delivered them.
final class SerfRelays: @unchecked Sendable {
    private var processes: [Process] = []
    private var inputs: [FileHandle] = []
    private let seen: Mutex<(ready: Set<Int>, sent: [String: UInt64], got: [[String: UInt64]])>
    private let heard = DispatchSemaphore(value: 0)

    init(hosts: NamespaceHosts) throws {
        seen = Mutex(([], [:], Array(repeating: [:], count: hosts.count)))
        let bench = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        for i in 0..<hosts.count {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
            p.arguments = hosts.lab.enter(i) + [bench, "serf-relay", NamespaceHosts.serfRPC, hosts.data(i) + "/serf/serf-secrets.json"]
            let (input, output) = (Pipe(), Pipe())
            p.standardInput = input
            p.standardOutput = output
            p.standardError = FileHandle(forWritingAtPath: "/dev/null")
            try p.run()
            processes.append(p)
            inputs.append(input.fileHandleForWriting)
            let reader = output.fileHandleForReading
            Thread.detachNewThread { [self] in
                var pending = Data()
                while case let chunk = reader.availableData, !chunk.isEmpty {
                    pending += chunk
                    while let end = pending.firstIndex(of: UInt8(ascii: "\n")) {
                        note(String(decoding: pending[pending.startIndex..<end], as: UTF8.self), host: i)
                        pending = pending[(end + 1)...]
                    }
                }
            }
        }
    }

    private func note(_ line: String, host: Int) {
        let fields = line.split(separator: " ")
        seen.withLock { s in
            if fields == ["ready"] { s.ready.insert(host) }
            guard fields.count == 3, let t = UInt64(fields[2]) else { return }
            if fields[0] == "sent" { s.sent[String(fields[1])] = t }
            if fields[0] == "got" { s.got[host][String(fields[1])] = t }
        }
        heard.signal()
    }

    func waitReady(timeout: Duration) async throws {
        let count = processes.count
        guard await Readiness.waitAsync(timeout: timeout, every: .milliseconds(100), { seen.withLock { $0.ready.count } == count }) else {
            throw BenchError("serf relays not ready: \(seen.withLock { $0.ready.count }) of \(count)")
        }
    }

    /// Sends user event `name` through host 0's Serf and waits until every other host's Serf has
    /// delivered it or `timeout` seconds pass; returns ms from the send to each delivery (nil: not
    /// delivered in time), by host (host 0 left out).
    func event(_ name: String, timeout: Double) -> [Double?] {
        inputs[0].write(Data("\(name)\n".utf8))
        let deadline = DispatchTime.now() + timeout
        func arrivals() -> [Double?]? {
            seen.withLock { s in
                guard let sent = s.sent[name] else { return nil }
                return s.got.dropFirst().map { got in got[name].map { Double($0 &- sent) / 1e6 } }
            }
        }
        while true {
            if let a = arrivals(), a.allSatisfy({ $0 != nil }) { return a }
            if heard.wait(timeout: deadline) == .timedOut {
                return arrivals() ?? Array(repeating: nil, count: processes.count - 1)
            }
        }
    }

    /// Closes the relays' input (each ends by itself) and stops them by pid.
    func stop() {
        for input in inputs { try? input.close() }
        for p in processes { p.stop(signal: SIGTERM, grace: 5) }
        processes = []
        inputs = []
    }
}
