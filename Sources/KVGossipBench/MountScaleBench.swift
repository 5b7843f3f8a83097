import Foundation
import Glibc
import KVGossipTestSupport

/// The mount over a large tree: how long an agent takes to show it, and what the agent keeps per
/// key once mounted, after `ls -R` of the mount, and after every file was read. The same agent
/// without a mount on the same data is the baseline: the difference is the mount's own.
enum MountScaleBench {
    /// Resident memory in MiB: everything (VmRSS) and the heap alone (RssAnon).
    struct Memory {
        var resident: Double
        var heap: Double

        static func of(_ pid: Int32) -> Memory {
            Memory(resident: ProcessMemory.resident(pid), heap: ProcessMemory.anonymous(pid))
        }
    }

    struct Figures {
        var keys: Int
        /// nil when an earlier run's tree was reused (KVG_BENCH_TREE).
        var generateSeconds: Double?
        /// The agent without a mount, once its control socket answers.
        var withoutMount: Memory
        /// Agent start to the mount answering a stat of its last key.
        var startSeconds: Double
        var mounted: Memory
        var afterList: Memory
        var afterReads: Memory
        /// VmHWM over the whole run of the mounted agent.
        var peak: Double
        var listSeconds: Double
        var readSeconds: Double

        /// The mount's heap per key: the mounted agent's heap after every read, less the heap of the
        /// agent without a mount.
        var mountBytesPerKey: Double { (afterReads.heap - withoutMount.heap) * 1_048_576 / Double(keys) }
    }

    static func run(keys n: Int) async throws -> Figures {
        let dir = Bench.tempDirectory()
        let mountpoint = dir + "/kv"
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let generate = try Bench.tree(keys: n, at: "\(dir)/n0")

        let plain = try GossipBench.Agent(
            binary: GossipBench.binary(), directory: dir, name: "n0", root: Bench.root, port: LoopbackPort.free(), peers: [])
        let withoutMount: Memory
        do {
            defer { plain.stop() }
            await (try plain.connect(timeoutSeconds: 120)).close()
            withoutMount = Memory.of(plain.process.processIdentifier)
        }

        let started = DispatchTime.now().uptimeNanoseconds
        let agent = try GossipBench.Agent(
            binary: GossipBench.binary(), directory: dir, name: "n0", root: Bench.root, port: LoopbackPort.free(), peers: [],
            extra: ["--mount", mountpoint])
        defer { agent.stop() }
        let pid = agent.process.processIdentifier
        let lastKey = mountpoint + TreeGenerator.key(n - 1, under: "/big")
        try await waitForFile(lastKey, timeoutSeconds: 600)
        let startSeconds = ControlBench.seconds(since: started)
        let mounted = Memory.of(pid)

        let listSeconds = try Bench.seconds {
            guard try MountBench.spawnAndWait(["/bin/sh", "-c", "exec /bin/ls -R \"$0\" > /dev/null", mountpoint]) == 0 else {
                throw BenchError("ls -R \(mountpoint) failed")
            }
        }
        let afterList = Memory.of(pid)

        let readSeconds = try Bench.seconds {
            for i in 0..<n {
                let bytes = try MountBench.readFile(mountpoint + TreeGenerator.key(i, under: "/big"))
                guard bytes == Array(TreeGenerator.value(i).utf8) else { throw BenchError("key \(i) read back wrong") }
            }
        }
        let afterReads = Memory.of(pid)
        return Figures(
            keys: n, generateSeconds: generate, withoutMount: withoutMount, startSeconds: startSeconds, mounted: mounted,
            afterList: afterList, afterReads: afterReads, peak: ProcessMemory.peak(pid), listSeconds: listSeconds, readSeconds: readSeconds)
    }

    /// Waits until `path` can be stat'ed (the mount is up and shows it).
    static func waitForFile(_ path: String, timeoutSeconds: Double) async throws {
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(timeoutSeconds * 1e9)
        var st = stat()
        while stat(path, &st) != 0 {
            guard DispatchTime.now().uptimeNanoseconds < deadline else { throw BenchError("\(path) never appeared") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}
