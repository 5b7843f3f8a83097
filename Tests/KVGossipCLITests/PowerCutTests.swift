import Foundation
import Glibc
import KVGossipTestSupport
import KVGossipTestTraits
import Synchronization
import Testing

/// A power cut loses nothing acknowledged (Docs/contract.md §Storage).
///
/// The agent's data directory is on powercut-fs (Fixtures/powercut-fs.c), a FUSE disk with a
/// volatile write cache. Its model: a file's data (length included) is durable only once the file
/// is fsync'd or fdatasync'd; metadata — creating, unlinking and renaming files and directories,
/// modes, times — is durable at once. A cut replaces every file's content with its durable content.
///
/// Each round writes through `kvgossip set` and through the agent's mount at the same time, noting a
/// write only once it was acknowledged (the command exited 0, close() returned 0), and cuts the power
/// while both writers are still going: at whatever point the agent is in odd rounds, and in even
/// ones at its next sync, so a commit's written pages are lost and the commit is never
/// acknowledged. From the cut on the disk fails every I/O, as a dead disk
/// would, so nothing can be acknowledged after it; then the agent is killed, the power comes back,
/// and a new agent on the same data directory must open the store and hold every acknowledged
/// value of every round so far. With the WAL not synced at commit (`synchronous = NORMAL`) the cut
/// takes the writes since the last checkpoint with it.
@Suite(.serialized, .integration) struct PowerCutTests {
    /// Runs `write(n)` for n = 1, 2, … on a thread of its own until stopped, keeping the n of each
    /// write that returned true (was acknowledged).
    final class WriterLoop: Sendable {
        private let acked = Mutex<[Int]>([])
        private let stopping = Atomic<Bool>(false)
        private let done = DispatchSemaphore(value: 0)

        init(_ write: @escaping @Sendable (Int) -> Bool) {
            Thread.detachNewThread { [self] in
                var n = 0
                while !stopping.load(ordering: .relaxed) {
                    n += 1
                    if write(n) { acked.withLock { $0.append(n) } }
                }
                done.signal()
            }
        }

        var acknowledged: [Int] { acked.withLock { $0 } }

        /// Stops the loop and waits for the write in progress to end.
        func stop() {
            guard !stopping.exchange(true, ordering: .relaxed) else { return }
            done.wait()
        }
    }

    @Test func aPowerCutLosesNoAcknowledgedWrite() throws {
        guard PowerCutDisk.canBeBuilt() else { return }
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let disk = try PowerCutDisk(in: cli)
        defer { disk.stop() }
        let root = try cli.keygen("root.key")
        let data = disk.mountpoint + "/data", socket = cli.path("agent.sock"), mnt = cli.path("kv")
        let port = LoopbackPort.free()
        func startAgent(_ round: Int) throws -> AgentProcess {
            try AgentProcess(cli: cli, name: "agent-\(round)", data: data, socket: socket, arguments: [
                "agent", "--data", data, "--root", root, "--control", socket, "--log-level", "debug", "--no-serf",
                "--key", "root.key", "--mount", mnt, "--listen", "127.0.0.1:\(port)",
            ])
        }

        var expected: [String: String] = [:]  // every acknowledged write so far: key → value
        var lost = Set<String>()
        var agent = try startAgent(0)
        defer { agent.stop(); MountAgentTests.detach(mnt) }
        for round in 1...5 {
            #expect(try MountAgentTests.shell("mkdir -p \(mnt)/m/r\(round)", in: cli).status == 0)
            let current = agent
            let sets = WriterLoop { n in
                (try? current.run(["set", "/p/r\(round)/k\(n)", "v\(n)"]).status) == 0
            }
            let saves = WriterLoop { n in Self.save("v\(n)\n", to: "\(mnt)/m/r\(round)/k\(n)") }
            defer { sets.stop(); saves.stop() }
            let enough = Readiness.wait(timeout: 120) { sets.acknowledged.count >= 20 && saves.acknowledged.count >= 4 }
            #expect(enough, "round \(round): only \(sets.acknowledged.count) sets and \(saves.acknowledged.count) saves acknowledged")

            // The power goes while both writers are busy, between two disk operations in odd rounds
            // and in even ones at the next sync, in the middle of a commit; the machine stops with it.
            let cut: PowerCutDisk.Report
            let point = round % 2 == 1 ? "between operations" : "at a sync"
            if round % 2 == 1 {
                cut = try disk.cut()
            } else {
                try disk.cutAtNextSync()
                let synced = try Readiness.wait { try disk.report().cuts == round }
                #expect(synced, "round \(round): the agent made no sync while writes were acknowledged")
                if !synced { try disk.cut() }
                cut = try disk.report()
            }
            // Its mount goes with it: with the connection aborted first, no thread of the agent can
            // be left waiting on the agent's own mount, which would keep it from ever exiting.
            FuseConnection.abort(mountpoint: mnt)
            agent.stop(signal: SIGKILL)
            sets.stop()
            saves.stop()
            MountAgentTests.detach(mnt)
            for n in sets.acknowledged { expected["/p/r\(round)/k\(n)"] = "v\(n)" }
            for n in saves.acknowledged { expected["/m/r\(round)/k\(n)"] = "v\(n)\n" }
            print("power cut \(round) (\(point)): \(sets.acknowledged.count) sets and \(saves.acknowledged.count) saves "
                + "acknowledged; the cut dropped \(cut.dropped) unsynced bytes in \(cut.files) files")
            #expect(cut.dropped > 0, "the cut dropped nothing: the test exercised no unsynced data")

            // The dead agent's files are closed (its mapping of -shm flushed) before the power returns.
            #expect(try Readiness.wait { try disk.report().open == 0 }, "the killed agent's files are still open")
            try disk.powerOn()
            agent = try startAgent(round)
            let missing = try Self.missing(expected, in: agent)
            lost.formUnion(missing)
            #expect(missing.count == 0, "round \(round): \(missing.count) of \(expected.count) acknowledged writes lost: \(missing.prefix(10))")
            #expect(try agent.run(["status"]).status == 0)
        }
        print("power cuts: \(expected.count) acknowledged writes over 5 cuts, \(lost.count) lost")
        print(disk.output.output.split(separator: "\n").filter { $0.contains(" of ") }.joined(separator: "\n"))
    }

    /// A sync that fails inside SQLite's own commit (a local write syncs the log there) is as final
    /// as a failed sync of the agent's (Docs/architecture.md §Durability): once the disk is back,
    /// the agent still refuses every write, and `status` says why, until it is restarted.
    @Test func aCommitWhoseSyncFailedLeavesTheAgentRefusingWrites() throws {
        guard PowerCutDisk.canBeBuilt() else { return }
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let disk = try PowerCutDisk(in: cli)
        defer { disk.stop() }
        let root = try cli.keygen("root.key")
        let agent = try AgentProcess(cli: cli, root: root, data: disk.mountpoint + "/data", extraArgs: ["--key", "root.key"])
        defer { agent.stop() }
        #expect(try agent.run(["set", "/before", "1"]).status == 0)
        // No peers and an idle log: the next sync on the disk is this write's, inside its commit.
        try disk.cutAtNextSync()
        #expect(try agent.run(["set", "/cut", "2"]).status != 0)
        #expect(try disk.report().cuts == 1)
        try disk.powerOn()
        let after = try agent.run(["set", "/after", "3"])
        #expect(after.status != 0 && after.stderr.contains("accepts no more writes"), "\(after)")
        let problems = try agent.status()["problems"] as? [String] ?? []
        #expect(problems.contains { $0.contains("accepts no more writes") }, "\(problems)")
    }

    /// `echo VALUE > path` without a shell: true once close() reported success.
    static func save(_ value: String, to path: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { return false }
        let written = value.withCString { write(fd, $0, strlen($0)) }
        return close(fd) == 0 && written == value.utf8.count
    }

    /// The keys of `expected` the agent does not hold with the expected value (one listing for all,
    /// and `kvgossip get` for the newest key of each kind).
    static func missing(_ expected: [String: String], in agent: AgentProcess) throws -> [String] {
        struct Listed: Decodable {
            let key: String
            let value: Data
        }
        let listing = try agent.run(["ls", "--json"])
        guard listing.status == 0 else { throw CLIError("ls failed: \(listing.stderr)") }
        let held = try JSONDecoder().decode([Listed].self, from: Data(listing.stdout.utf8))
        var values: [String: String] = [:]
        for r in held { values[r.key] = String(decoding: r.value, as: UTF8.self) }
        for prefix in ["/p/", "/m/"] {
            let newest = expected.keys.filter { $0.hasPrefix(prefix) }.max { Self.order($0).lexicographicallyPrecedes(Self.order($1)) }
            if let newest { values[newest] = try agent.run(["get", newest]).stdout }
        }
        return expected.filter { values[$0.key] != $0.value }.map(\.key).sorted()
    }

    /// (round, n) of `/x/rROUND/kN`.
    static func order(_ key: String) -> [Int] {
        key.split(separator: "/").compactMap { Int($0.dropFirst()) }
    }
}
