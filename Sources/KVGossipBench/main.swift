import Foundation
import KVGossipCore
import KVGossipStore
import KVGossipTestSupport

/// `kvgossip-bench [--quick] [store|sync|mount|mount-scale|gossip|simulate|control|template|history|etcd|hosts ...] [--keys=N] [--nodes=N]
/// [--hosts=N] [--writes=N] [--block=N] [--partition-keys=N] [--log-level=LEVEL] [--keep]`: prints the figures, each beside a
/// baseline measured in the same run, so the ratios mean something on whatever machine runs it.
/// With no section named, every section runs.
let arguments = CommandLine.arguments.dropFirst()
// The `hosts` section runs one of these inside each host's network namespace.
if arguments.first == "serf-relay", arguments.count == 3 {
    try await SerfRelay.run(rpc: arguments.dropFirst().first!, secrets: arguments.last!)
    exit(0)
}
// The `mount` section's floor: a FUSE filesystem that only replies, in a process of its own.
if arguments.first == "fuse-floor", arguments.count == 3 {
    exit(FuseFloor.serve(mountpoint: arguments.dropFirst().first!, content: arguments.last!))
}
let quick = arguments.contains("--quick")
let sections = Set(arguments.filter { !$0.hasPrefix("--") })
let known: Set = ["store", "sync", "mount", "mount-scale", "gossip", "simulate", "control", "template", "history", "etcd", "hosts"]
if arguments.contains("--help") || !sections.isSubset(of: known) {
    print("usage: kvgossip-bench [--quick] [\(known.sorted().joined(separator: "|")) ...] [--keys=N] [--nodes=N] "
        + "[--hosts=N] [--writes=N] [--block=N] [--partition-keys=N] [--log-level=LEVEL] [--keep]")
    exit(sections.isSubset(of: known) ? 0 : 2)
}
func runs(_ section: String) -> Bool { sections.isEmpty || sections.contains(section) }
/// The value of `--name=N`, if given.
func number(_ name: String) -> Int? { arguments.first { $0.hasPrefix("--\(name)=") }.flatMap { Int($0.dropFirst(name.count + 3)) } }
let scale = quick ? 10 : 1
/// Sections that failed; the run goes on with the next one and exits 1 at the end.
var failed: [String] = []
/// Runs `body` when section `name` was asked for. A failure (an agent that died, a mount that went
/// away, no inotify event in time) is printed with its reason, where thrown at top level it
/// stopped the run with a backtrace instead; the sections' own clean-up has run by then.
@MainActor func section(_ name: String, _ body: @MainActor () async throws -> Void) async {
    guard runs(name) else { return }
    do {
        try await body()
    } catch {
        FileHandle.standardError.write(Data("kvgossip-bench: \(name) failed: \(error)\n".utf8))
        failed.append(name)
    }
}

print("kvgossip-bench (\(quick ? "quick" : "full") run)")
print(HostIdle.describe())
var verifyRate = 0.0
if runs("store") || runs("sync") {
    verifyRate = Bench.rawVerifyRate(count: 20_000 / scale)
    print(String(format: "raw libsodium Ed25519 verify: %.0f ops/s (one core)", verifyRate))
}

await section("store") {
    let applied = try Bench.batchedApply(records: 100_000 / scale, batch: 1_000)
    // The baseline again right after: on a shared machine the verify rate drifts by tens of
    // percent within a minute, so the ratio is taken against the mean of both.
    let verifyAfter = Bench.rawVerifyRate(count: 20_000 / scale)
    let baseline = (verifyRate + verifyAfter) / 2
    print(String(format: "verify+apply %d records (one-link chain, batches of 1000, durable per batch): %.0f records/s = %.2f× raw verify (goal ≥ 0.8×; raw verify %.0f/s before, %.0f/s after), %.2f cores busy",
                 applied.count, applied.rate, applied.rate / baseline, verifyRate, verifyAfter, applied.cores))

    let junk = try Bench.junkPoolRefusal(count: 2_000 / scale)
    print(String(format: "junk-pool record refused (32 junk grants, %d bytes): %.1f µs each, decoding included; 1 KB patterns (pool over its byte limit): %.1f µs; one Ed25519 verify: %.1f µs (goal < 1 ms)",
                 junk.poolBytes, junk.fittingMicroseconds, junk.fatMicroseconds, 1e6 / verifyRate))

    let latency = try Bench.singleApplyLatency(count: 2_000 / scale)
    print(String(format: "single-record durable apply: p50 %.3f ms, p99 %.3f ms", latency.p50, latency.p99))

    for n in [10_000, quick ? 100_000 : 1_000_000] {
        let m = try Bench.merkleUpdateCost(entries: n, updates: 20_000 / scale)
        print(String(format: "Merkle update per change at n = %8d: %.2f µs (in memory), depth %d", n, m.microseconds, m.depth))
    }
}

await section("sync") {
    let keys = quick ? 10_000 : 100_000
    let reconcile = try await SyncBench.reconcile(n: keys, d: 10)
    print(String(format: "reconcile d = 10 between two %d-key stores over TCP: %.0f ms, %d bytes, %d round trips (goal ≤ 1 s, ≤ 64 KB)",
                 keys, reconcile.seconds * 1000, reconcile.bytes, reconcile.roundTrips))
    let setUp = try await SyncBench.handshake(links: quick ? 50 : 200)
    print(String(format: "link set-up (TCP connect, handshake: 2 signatures made and 2 verified, X25519, stream headers): %.2f ms each; baseline, a plain TCP connect to the same listener: %.3f ms",
                 setUp.link * 1000, setUp.tcpConnect * 1000))
    let fresh = try await SyncBench.emptyHost(n: keys)
    print(String(format: "empty host receives a %d-key tree: %.2f s; verifying those records alone: %.2f s; ratio %.2f× (goal ≤ 2×); %d pulled batches checked on arrival",
                 keys, fresh.seconds, fresh.verifySeconds, fresh.seconds / fresh.verifySeconds, fresh.prechecked))
}

await section("mount") {
    let floor = try await MountBench.floor(quick: quick)
    print(String(format: "FUSE floor (a one-file filesystem that only replies, one thread polling as the mount's read turn does, %@): open+read+close p50 %.1f µs vs tmpfs %.1f µs = %.1f×; p99 %.1f µs vs tmpfs %.1f µs = %.1f× (what any FUSE filesystem pays here; see Docs/filesystem.md §Waking the caller where the answer is)",
                 floor.polls, floor.fuse.p50, floor.tmpfs.p50, floor.fuse.p50 / floor.tmpfs.p50, floor.fuse.p99, floor.tmpfs.p99, floor.fuse.p99 / floor.tmpfs.p99))
    for readers in MountBench.Mode.allCases {
        let m = try await MountBench.run(quick: quick, mode: readers)
        let mode = readers.name
        let (orc, tmpfs, beside) = (m.openReadClose.mount, m.openReadClose.tmpfs, m.openReadCloseBesideWriter)
        print(String(format: "%@: open+read+close of a small key p50 %.1f µs vs tmpfs %.1f µs = %.1f× (goal ≤ 5×); p99 %.1f µs vs tmpfs %.1f µs = %.1f× (goal ≤ 10×); mean %.1f vs %.1f µs",
                     mode, orc.p50, tmpfs.p50, orc.p50 / tmpfs.p50, orc.p99, tmpfs.p99, orc.p99 / tmpfs.p99, orc.mean, tmpfs.mean))
        print(String(format: "%@: the same beside a writer saving another key through the mount (%d saves meanwhile): p50 %.1f µs, p99 %.1f µs = %.2f× the idle p99 (goal ≤ 2×)",
                     mode, m.savesBesideReaders, beside.p50, beside.p99, beside.p99 / orc.p99))
        let requests = try await MountBench.requestsPerCycle(mode: readers)
        print("\(mode): FUSE requests per open+read+close (KVGOSSIP_FUSE_DEBUG=1 agent, 200 cycles): "
            + requests.map { String(format: "%@ %.2f", $0.opcode, $0.perCycle) }.joined(separator: ", ")
            + String(format: "; total %.2f", requests.reduce(0) { $0 + $1.perCycle }))
        print(String(format: "%@: cat in a loop %.0f/s vs tmpfs %.0f/s = %.2f× throughput (goal ≥ 0.95)",
                     mode, m.catPerSecond.mount, m.catPerSecond.tmpfs, m.catPerSecond.mount / m.catPerSecond.tmpfs))
        print(String(format: "%@: warm 16 MiB read (a 1 MiB key, the value limit, read 16× per open) %.2f GB/s vs tmpfs %.2f GB/s = %.2f× (goal ≥ 0.8)",
                     mode, m.warm16MiB.mount, m.warm16MiB.tmpfs, m.warm16MiB.mount / m.warm16MiB.tmpfs))
        print(String(format: "%@: warm 1 MiB read, one open each %.2f GB/s vs tmpfs %.2f GB/s = %.2f× (goal ≥ 0.8)",
                     mode, m.warm1MiBPerOpen.mount, m.warm1MiBPerOpen.tmpfs, m.warm1MiBPerOpen.mount / m.warm1MiBPerOpen.tmpfs))
        print(String(format: "%@: echo > key (one signed record, durable at close) p50 %.2f ms, p99 %.2f ms; tmpfs p50 %.3f ms",
                     mode, m.echoWrite.p50, m.echoWrite.p99, m.echoWrite.tmpfsP50))
        print(String(format: "%@: control-API set → IN_CLOSE_WRITE on the file p50 %.2f ms, p99 %.2f ms (goal p50 ≤ 5 ms); stale reads after the event: %d",
                     mode, m.setToInotify.p50, m.setToInotify.p99, m.setToInotify.staleReads))
        print(String(format: "%@: `kvgossip set` process → IN_CLOSE_WRITE p50 %.1f ms, p99 %.1f ms (process start-up included)",
                     mode, m.cliSetToInotify.p50, m.cliSetToInotify.p99))
    }
}

await section("mount-scale") {
    // --keys=N measures one size only (e.g. 50000, to compare with older figures).
    let chosen = arguments.first { $0.hasPrefix("--keys=") }.flatMap { Int($0.dropFirst("--keys=".count)) }
    for n in chosen.map({ [$0] }) ?? (quick ? [20_000] : [50_000, 1_000_000]) {
        let s = try await MountScaleBench.run(keys: n)
        let generated = s.generateSeconds.map { String(format: "tree generated in %.0f s", $0) } ?? "kept tree reused (KVG_BENCH_TREE)"
        print(String(format: "mount-scale %d keys (%@): agent without a mount RSS %.0f MiB (heap %.0f MiB); with --mount, agent start → the last key stat'ed %.1f s (goal ≤ 10 s at 1,000,000)",
                     n, generated, s.withoutMount.resident, s.withoutMount.heap, s.startSeconds))
        print(String(format: "mount-scale %d keys: agent RSS mounted %.0f MiB (heap %.0f), after ls -R (%.1f s) %.0f MiB (heap %.0f), after reading every file (%.1f s) %.0f MiB (heap %.0f), peak %.0f MiB (goal ≤ 1024 MiB)",
                     n, s.mounted.resident, s.mounted.heap, s.listSeconds, s.afterList.resident, s.afterList.heap, s.readSeconds,
                     s.afterReads.resident, s.afterReads.heap, s.peak))
        print(String(format: "mount-scale %d keys: %.0f bytes of RSS per key; the mount's heap (mounted agent after the reads less the agent without a mount) %.0f bytes per key",
                     n, s.afterReads.resident * 1_048_576 / Double(n), s.mountBytesPerKey))
    }
}

await section("gossip") {
    let anchor = try await SerfAnchor.userEventLatency(events: quick ? 30 : 100)
    print(String(format: "anchor: Serf user event between two local Serf agents (lan profile) p50 %.1f ms, p99 %.1f ms", anchor.p50, anchor.p99))
    for n in [3, 5] {
        let l = try await GossipBench.latencies(agents: n, writes: quick ? 50 : 200)
        print(String(format: "%d agents: write → visible on every other agent (control-API watch) p50 %.1f ms, p99 %.1f ms (goal p50 ≤ 25 ms, p99 ≤ 100 ms)",
                     n, l.visible.p50, l.visible.p99))
        print(String(format: "%d agents: write → IN_CLOSE_WRITE in every other agent's mount p50 %.1f ms, p99 %.1f ms (goal p50 ≤ 25 ms, p99 ≤ 100 ms); stale reads after the event: %d",
                     n, l.inotify.p50, l.inotify.p99, l.staleReads))
    }
}

await section("simulate") {
    // --nodes=N simulates one size only. N = 10,000 takes about 5 minutes and 5.4 GB at its peak
    // (Docs/architecture.md §Simulation), so it runs 20 writes and a partition of 100 per side.
    let chosen = arguments.first { $0.hasPrefix("--nodes=") }.flatMap { Int($0.dropFirst("--nodes=".count)) }
    for n in chosen.map({ [$0] }) ?? (quick ? [200, 1000] : [1000, 10_000]) {
        SimulationBench.report(nodes: n, writes: n > 2000 ? 20 : (quick ? 20 : 100), quick: quick || n > 2000)
    }
}

await section("control") {
    let c = try await ControlBench.run(keys: quick ? 100_000 : 1_000_000)
    let generated = c.generateSeconds.map { String(format: "generated a %d-key tree (signed, applied in batches of 5000) in %.1f s", c.keys, $0) }
        ?? "reused a \(c.keys)-key tree (KVG_BENCH_TREE)"
    print(String(format: "control: %@; agent up and answering in %.1f s; status %.1f ms, again %.1f ms, after a write %.1f ms",
                 generated, c.startSeconds, c.statusMs.first, c.statusMs.again, c.statusMs.afterWrite))
    print(String(format: "control: connection set-up to the first answer: Unix socket p50 %.2f ms, p99 %.2f ms; TCP with the handshake p50 %.2f ms, p99 %.2f ms",
                 c.setup.unix.p50, c.setup.unix.p99, c.setup.tcp.p50, c.setup.tcp.p99))
    for (name, r) in [("kvgossip ls /big", c.ls), ("kvgossip watch / (initial values)", c.watch), ("client list subscription /big/** (to .synced)", c.subscription)] {
        print(String(format: "control: %@: %d lines, first after %.3f s, last after %.2f s; agent RSS %.0f MiB before, peak %.0f MiB (heap %.0f MiB before, peak %.0f MiB)",
                     name, r.lines, r.firstLine, r.lastLine, r.rssBefore, r.rssPeak, r.heapBefore, r.heapPeak))
    }
    let v = c.verification
    print(String(format: "control: client list /big/** verifying every record %.2f s; the same pages unverified (ControlClient, encodings decoded) %.2f s: %.1f µs per record; RecordValidator.validate alone %.1f µs (root-signed), %.1f µs (one-grant chain)",
                 v.verifiedList, v.rawList, v.perRecordMicros, v.validateMicros, v.validateGrantedMicros))
}

await section("template") {
    // No wait, then the default window (100ms:2s), whose quiet time every single change waits out.
    for (wait, writes) in [("0ms", quick ? 30 : 200), ("100ms:2s", quick ? 10 : 50)] {
        let t = try await TemplateBench.latencies(writes: writes, wait: wait)
        print(String(format: "kvgossip template --wait %@: write on another host → command running p50 %.1f ms, p99 %.1f ms; baseline, the same writes → that host's control-API watch p50 %.1f ms, p99 %.1f ms",
                     wait, t.command.p50, t.command.p99, t.watch.p50, t.watch.p99))
    }
}

await section("history") {
    let keys = quick ? 5_000 : 20_000
    let cost = try HistoryBench.historyCost(keys: keys, pairs: quick ? 3 : 11)
    print(String(format: "verify+apply of %d records that each replace one (batches of 1000, durable per batch), %d pairs of runs: history costs %.1f%% of the rate (median of the pairs' ratios; goal ≤ 10%%); medians off %.0f records/s at %.1f µs CPU per record, on %.0f records/s at %.1f µs (each pair off/on: ",
                 keys, cost.pairs.count, cost.cost * 100, cost.off.rate, cost.off.cpuMicroseconds, cost.on.rate, cost.on.cpuMicroseconds)
        + cost.pairs.map { String(format: "%.0f/%.0f %.0f/%.0f µs", $0.off.rate, $0.on.rate, $0.off.cpuMicroseconds, $0.on.cpuMicroseconds) }.joined(separator: ", ") + ")")
    let log = try HistoryBench.logOfOneKey(versions: 1_000, repeats: quick ? 5 : 20)
    print(String(format: "history of a key with 1,000 versions read as the agent answers `kvgossip log` (%d pages): p50 %.1f ms; with the records (--values, -p, --export, revert): p50 %.1f ms",
                 log.pages, log.p50Ms, log.withRecordsP50Ms))
}

await section("etcd") {
    if let etcd = EtcdBench.binary() {
        // --writes=N writes per side (300; --quick 50), in alternating blocks of --block=N (50;
        // --quick 25).
        let perBlock = max(1, number("block") ?? (quick ? 25 : 50))
        let blocks = max(1, (number("writes") ?? (quick ? 50 : 300)) / perBlock)
        let f = try await EtcdBench.compare(etcd: etcd, blocks: blocks, perBlock: perBlock)
        print(String(format: "etcd: 3 members on loopback, put through member 1 → both watches (JSON gateway of members 2 and 3) have it: p50 %.2f ms, p99 %.2f ms; CPU %.2f ms per write (3 members)",
                     f.etcd.p50, f.etcd.p99, f.etcd.cpuMsPerWrite))
        print(String(format: "etcd: KVGossip, 3 agents with mounts, file written on host 1 → IN_CLOSE_WRITE and read on hosts 2 and 3: p50 %.2f ms, p99 %.2f ms; CPU %.2f ms per write (3 agents); stale reads %d; %.2f pushes per write",
                     f.kvgossip.p50, f.kvgossip.p99, f.kvgossip.cpuMsPerWrite, f.staleReads, f.pushesPerWrite))
        print(String(format: "etcd: KVGossip / etcd (%d writes each, %d alternating blocks): p50 %.2f×, p99 %.2f×, CPU per write %.2f× (goal ≤ 1× on all three)",
                     blocks * perBlock, blocks * 2, f.kvgossip.p50 / f.etcd.p50, f.kvgossip.p99 / f.etcd.p99, f.kvgossip.cpuMsPerWrite / f.etcd.cpuMsPerWrite))
    } else {
        print("etcd: skipped: etcd not installed (Scripts/install-deps --bench installs etcd-server)")
    }
}

await section("hosts") {
    // --hosts=N hosts (20), --writes=N writes and as many Serf events (200), --partition-keys=N keys
    // written on each side of the partition (1000); --log-level=LEVEL for the agents (info);
    // --keep keeps the hosts' data directories and logs.
    if let missing = NetnsLab.unavailableReason ?? (FileManager.default.isExecutableFile(atPath: "/usr/bin/serf") ? nil : "needs serf") {
        print("hosts: skipped: \(missing)")
    } else {
        var o = HostsBench.Options()
        o.hosts = number("hosts") ?? (quick ? 5 : 20)
        o.writes = number("writes") ?? (quick ? 50 : 200)
        o.keysPerSide = number("partition-keys") ?? (quick ? 200 : 1_000)
        o.logLevel = arguments.first { $0.hasPrefix("--log-level=") }.map { String($0.dropFirst("--log-level=".count)) } ?? "info"
        o.keep = arguments.contains("--keep")
        let f = try await HostsBench.run(o)
        HostsBench.report(f)
    }
}

exit(failed.isEmpty ? 0 : 1)
