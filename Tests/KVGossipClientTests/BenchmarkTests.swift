import Foundation
import KVGossipClient
import Testing

extension AgentTests {
    /// Figures for the report, printed as `BENCH …` lines:
    /// - notification latency: a value minted through the control API in this process, timed from
    ///   sending the request to the subscription's value stream yielding it (debug agent, one host);
    /// - memory: resident-set growth of this process for 10 000 subscriptions to distinct keys,
    ///   each answered (clean), from /proc/self/statm — with and without first handing freed pages
    ///   back (`malloc_trim`). Other suites share the process, so run this test alone for a clean
    ///   memory figure.
    ///
    /// Figures, not a pass/fail check: it runs only with `KVG_CLIENT_FIGURES=1` set.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["KVG_CLIENT_FIGURES"] != nil, "figures: set KVG_CLIENT_FIGURES=1"))
    func benchmarkLatencyAndMemoryPerSubscription() async throws {
        let sandbox = try Sandbox()
        let root = try await sandbox.keygen("root.key")
        let a = try await sandbox.startAgent("A", root: root)
        let client = KVClient(endpoints: [.unix(a.socket)], options: testOptions(cullDelay: .zero))

        // Latency.
        let sub = try await client.subscribeKey("/bench/latency")
        var values = sub.valueChanges.makeAsyncIterator()
        while let v = await values.next(), v == .unknown {}
        var latencies: [Double] = []
        var roundTrips: [Double] = []
        let rounds = 300
        for i in 0..<rounds {
            let wanted = "v\(i)"
            let start = ContinuousClock.now
            async let write = client.mint("/bench/latency", value: Data(wanted.utf8))
            while let v = await values.next(), v.string != wanted {}
            latencies.append((ContinuousClock.now - start).milliseconds)
            _ = try await write
            roundTrips.append((ContinuousClock.now - start).milliseconds)
        }
        latencies.sort()
        roundTrips.sort()
        let p = { (xs: [Double], q: Double) in xs[min(xs.count - 1, Int(Double(xs.count) * q))] }
        print(String(format: "BENCH notification latency over %d writes: p50 %.2f ms, p99 %.2f ms, max %.2f ms (mint round trip p50 %.2f ms)",
                     rounds, p(latencies, 0.5), p(latencies, 0.99), latencies.last!, p(roundTrips, 0.5)))
        await sub.unsubscribe()

        // Memory: warm up the paths first so one-time allocations are not counted.
        var warm: [KeySubscription] = []
        for i in 0..<200 { warm.append(try await client.subscribeKey("/bench/warm/k\(i)")) }
        #expect(await eventually(.seconds(30)) { warm.allSatisfy { !$0.isDirty } })
        for s in warm { await s.unsubscribe() }
        #expect(await eventually(.seconds(10)) { await client.statistics.keyInterests == 0 })

        let count = 10_000
        // The test process is shared with every other suite running in parallel, so these figures
        // are clean only when this test runs alone: swift test --filter benchmarkLatency
        let heapBefore = Self.heapInUse()
        let before = Self.residentBytes()
        let agentBefore = Self.residentBytes(pid: a.pid)
        let started = ContinuousClock.now
        var subs: [KeySubscription] = []
        subs.reserveCapacity(count)
        for i in 0..<count { subs.append(try await client.subscribeKey("/bench/mem/k\(i)")) }
        let subscribed = ContinuousClock.now - started
        #expect(await eventually(.seconds(60)) { subs.allSatisfy { !$0.isDirty } })
        let settled = ContinuousClock.now - started
        let after = Self.residentBytes()
        let heapAfter = Self.heapInUse()
        let agentAfter = Self.residentBytes(pid: a.pid)
        let stats = await client.statistics
        print(String(format: "BENCH memory for %d subscriptions (distinct keys, all answered): RSS +%.1f MiB = %.0f bytes each; subscribe calls %.2f s, all answered after %.2f s; watches opened %d",
                     count, Double(after - before) / 1_048_576, Double(after - before) / Double(count),
                     subscribed.seconds, settled.seconds, stats.watchesOpened))
        print(String(format: "BENCH   RSS after malloc_trim: +%.0f bytes each; the agent's RSS for the 10 000 watches: +%.1f MiB",
                     Double(heapAfter - heapBefore) / Double(count), Double(agentAfter - agentBefore) / 1_048_576))
        #expect(stats.keyInterests == count)
        for s in subs { await s.unsubscribe() }
        await client.close()
    }

    /// Resident set size of a process: the second field of /proc/PID/statm, in pages.
    static func residentBytes(pid: Int32? = nil) -> Int {
        let text = (try? String(contentsOfFile: "/proc/\(pid.map(String.init) ?? "self")/statm", encoding: .utf8)) ?? ""
        let pages = Int(text.split(separator: " ").dropFirst().first ?? "0") ?? 0
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}

extension AgentTests {
    /// RSS after asking glibc to return freed pages (`malloc_trim(0)`), so the figure is what the
    /// subscriptions retain rather than what the 10 000 requests' transient buffers left behind.
    static func heapInUse() -> Int {
        typealias Trim = @convention(c) (Int) -> Int32
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") {
            _ = unsafeBitCast(symbol, to: Trim.self)(0)
        }
        return residentBytes()
    }
}

extension Duration {
    var milliseconds: Double { seconds * 1000 }
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}
