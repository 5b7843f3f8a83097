import Foundation
import KVGossipControl
import KVGossipTestSupport

/// `kvgossip template` end to end: a write on one agent, gossiped to a second one (static peers,
/// loopback), whose template process renders and runs its command. The command prints the wall
/// clock (`date +%s%N`) as it starts, so the figure runs from the write being sent to the command
/// running. The baseline, from the same writes: the second agent's control-API watch reporting the
/// value, which every render waits for anyway.
enum TemplateBench {
    struct Figures {
        var watch: (p50: Double, p99: Double)
        var command: (p50: Double, p99: Double)
    }

    static func latencies(writes: Int, wait: String) async throws -> Figures {
        let dir = Bench.tempDirectory()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ports = [LoopbackPort.free(), LoopbackPort.free()]
        var agents: [GossipBench.Agent] = []
        defer { agents.forEach { $0.stop() } }
        for i in 0..<2 {
            agents.append(try GossipBench.Agent(
                binary: GossipBench.binary(), directory: dir, name: "n\(i)", root: Bench.root, port: ports[i], peers: [ports[1 - i]]))
        }
        let writer = try await agents[0].connect()
        let reader = try await agents[1].connect()
        defer { Task { await writer.close(); await reader.close() } }
        let key = "/bench/template"

        let ran = "\(dir)/ran"
        try "{{ \"\(key)\"|key }}\n".write(toFile: "\(dir)/t.tmpl", atomically: true, encoding: .utf8)
        let template = Process()
        template.executableURL = URL(fileURLWithPath: GossipBench.binary())
        template.arguments = [
            "template", "--control", agents[1].socket, "--template", "\(dir)/t.tmpl:\(dir)/out", "--wait", wait,
            "--exec", "date +%s%N >> \(ran)", "--log-level", "warning",
        ]
        template.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try template.run()
        defer {
            kill(template.processIdentifier, SIGTERM)
            template.waitUntilExit()
        }

        let arrivals = Arrivals(count: 1)
        let (_, responses) = try await reader.open(op: .watch) { $0.key = key }
        let consumer = Task {
            do {
                for try await r in responses {
                    if let value = r.event?.record?.value { arrivals.note(String(decoding: value, as: UTF8.self), at: 0) }
                }
            } catch {}
        }
        defer { consumer.cancel() }

        func lines() -> [Substring] {
            ((try? String(contentsOfFile: ran, encoding: .utf8)) ?? "").split(separator: "\n")
        }
        /// Waits (up to 10 s) until the command has run `count` times; returns its last start time.
        func commandRun(_ count: Int) async throws -> UInt64 {
            let deadline = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < deadline {
                let done = lines()
                if done.count >= count, let last = done.last.flatMap({ UInt64($0) }) { return last }
                try await Task.sleep(for: .microseconds(200))
            }
            throw BenchError("the template command did not run a \(count)th time within 10 s")
        }
        func mint(_ value: String) async throws {
            _ = try await writer.call({
                $0.key = key
                $0.value = Data(value.utf8)
            }, op: .mint)
        }

        // The first render (no file yet) runs the command once before the measured writes.
        try await mint("start")
        _ = try await commandRun(1)
        var watch: [Double] = []
        var command: [Double] = []
        for i in 0..<writes {
            let value = "v\(i)"
            let startWall = wallClockNanoseconds()
            let startMono = DispatchTime.now().uptimeNanoseconds
            try await mint(value)
            let ranAt = try await commandRun(i + 2)
            command.append(Double(Int64(ranAt) - Int64(startWall)) / 1e6)
            if let seen = arrivals.lastArrival(of: value) { watch.append(Double(seen - startMono) / 1e6) }
        }
        watch.sort()
        command.sort()
        return Figures(
            watch: watch.isEmpty ? (.nan, .nan) : (Bench.percentile(watch, 0.5), Bench.percentile(watch, 0.99)),
            command: (Bench.percentile(command, 0.5), Bench.percentile(command, 0.99)))
    }

    /// CLOCK_REALTIME in nanoseconds: the clock `date +%s%N` prints.
    static func wallClockNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}
