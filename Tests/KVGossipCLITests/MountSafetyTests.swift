import Foundation
import KVGossipTestSupport
import KVGossipTestTraits
import Testing

/// The agent and its mount under the worst treatment: SIGKILL while changes replay into the mount,
/// and the mount pulled away under a running agent.
@Suite(.serialized, .integration) struct MountSafetyTests {
    /// Whether every thread of `pid` has ended (a zombie leader whose other threads still live,
    /// stuck on the mount, is not gone: it can never be reaped).
    static func isGone(_ pid: Int32) -> Bool {
        guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") else { return true }
        return tasks.allSatisfy { tid in
            guard let tid = Int32(tid), let state = ProcessState.of(tid) else { return true }
            return state == "Z" || state == "X"
        }
    }

    /// Threads of `pid` that sleep uninterruptibly, as "tid: wchan".
    static func uninterruptibleThreads(_ pid: Int32) -> [String] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.compactMap { tid -> String? in
            guard let tid = Int32(tid), ProcessState.of(tid) == "D" else { return nil }
            let wchan = (try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/wchan", encoding: .utf8)) ?? "?"
            return "\(tid): \(wchan)"
        }
    }

    /// SIGKILL again and again while the agent replays remote changes into its own mount and a
    /// program saves files through it: every killed agent dies at once (no thread left waiting on
    /// its own mount), and every restarted agent serves the mount with every acknowledged write.
    @Test func sigkillDuringReplayNeverHangsAndLosesNothingAcknowledged() throws {
        let rounds = Int(ProcessInfo.processInfo.environment["KVG_KILL_ROUNDS"] ?? "") ?? 100
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let mnt = cli.path("M-kv")
        var agent = try MountAgentTests.mountedAgent(cli, root: root)
        defer { agent.stop(); MountAgentTests.detach(mnt) }
        #expect(try MountAgentTests.shell("mkdir -p \(mnt)/local", in: cli).status == 0)

        // Local saves, each recorded once close() returned 0; failures (the agent is down) skipped.
        // Not `echo $i > f` in sh: the shell closes a builtin's redirection with dup2, which drops
        // close()'s error, so a save whose commit died with the agent counted as acknowledged.
        let saver = Process()
        saver.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        // Both loops stop between iterations when the `stop` file appears: killing them mid-save
        // would leave a file truncated by its open (as on any disk) and prove nothing.
        let stop = cli.path("stop")
        saver.arguments = ["-c", Self.saverScript, mnt, cli.path("saved"), stop]
        // Remote changes: control-API writes the agent replays into its mount.
        let minter = Process()
        minter.executableURL = URL(fileURLWithPath: "/bin/sh")
        minter.arguments = ["-c", "i=0; while [ ! -e \(stop) ]; do i=$((i+1)); \(CLIProcess.binary) set /remote/k$((i % 20)) $i --control \(agent.socket) >/dev/null 2>&1 && echo $i >> \(cli.path("minted")); done"]
        for p in [saver, minter] {
            p.standardError = FileHandle.nullDevice
            p.standardOutput = FileHandle.nullDevice
            try p.run()
        }
        defer { for p in [saver, minter] { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() } }
        func lines(_ name: String) -> [Int] {
            ((try? String(contentsOfFile: cli.path(name), encoding: .utf8)) ?? "").split(separator: "\n").compactMap { Int($0) }
        }

        var slowest: Duration = .zero
        var hung: [String] = []
        for round in 0..<rounds {
            // Let both writers make progress through this agent before killing it.
            let (saved, minted) = (lines("saved").count, lines("minted").count)
            #expect(Readiness.wait { lines("saved").count > saved && lines("minted").count > minted }, "round \(round): no progress\n\(agent.log.suffix(1500))")
            let pid = agent.pid
            let killed = ContinuousClock.now
            kill(pid, SIGKILL)
            let gone = Readiness.wait(timeout: 30, every: 0.005) { Self.isGone(pid) }
            slowest = max(slowest, ContinuousClock.now - killed)
            if !gone {
                hung.append("round \(round): pid \(pid) cannot finish dying, threads in D: \(Self.uninterruptibleThreads(pid))")
                // Free it (and this test) the only way there is.
                FuseConnection.abort(mountpoint: mnt)
                agent.process.waitUntilExit()
                break
            }
            agent.process.waitUntilExit()
            agent = try MountAgentTests.mountedAgent(cli, root: root)
            #expect(Readiness.mountAnswers(at: mnt), "round \(round): the restarted agent does not serve its mount")
        }
        #expect(hung.isEmpty, "\(hung)")
        print("measured: \(rounds) SIGKILLs during replay; slowest exit after the kill \(slowest); \(lines("saved").count) saves and \(lines("minted").count) mints acknowledged")

        // Stop the writers between two saves, then check every acknowledged write against the live agent.
        #expect(FileManager.default.createFile(atPath: stop, contents: nil))
        #expect(Readiness.wait { !saver.isRunning && !minter.isRunning }, "the writers did not stop")
        var newest: [String: Int] = [:]
        for n in lines("saved") { newest["/local/k\(n % 20)"] = n }
        for n in lines("minted") { newest["/remote/k\(n % 20)"] = n }
        for (key, n) in newest.sorted(by: { $0.key < $1.key }) {
            let stored = Int(try agent.run(["get", key]).out) ?? -1
            // The newest acknowledged write, or a later one whose acknowledgement the kill cut off.
            #expect(stored >= n, "\(key): stored \(stored) < acknowledged \(n)")
            let shown = try? String(contentsOfFile: mnt + key, encoding: .utf8)
            #expect(shown.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } == stored, "\(key): the mount shows \(shown ?? "nothing")")
        }
    }

    /// Saves `i` into local/k(i % 20) under argv[1] until argv[3] exists, appending `i` to argv[2]
    /// only when open, write and close all succeeded (Python raises on a failed close()).
    static let saverScript = """
        import os, sys
        mount, saved, stop = sys.argv[1:4]
        i = 0
        with open(saved, "a") as log:
            while not os.path.exists(stop):
                i += 1
                try:
                    f = open(f"{mount}/local/k{i % 20}", "w")
                    try:
                        f.write(f"{i}\\n")
                    finally:
                        f.close()
                except OSError:
                    continue
                log.write(f"{i}\\n")
                log.flush()
        """

    /// The tree unmounted under a running agent, with a symlink planted where a key's file was:
    /// a change to that key writes nothing outside the mount, the agent reports the loss and
    /// mounts the tree again.
    @Test func aMountPulledAwayIsReportedAndNothingLandsUnderIt() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let mnt = cli.path("M-kv")
        let agent = try MountAgentTests.mountedAgent(cli, root: root)
        defer { agent.stop(); MountAgentTests.detach(mnt) }
        try agent.run(["set", "/app/k", "v0"])
        #expect(Readiness.wait { (try? String(contentsOfFile: mnt + "/app/k", encoding: .utf8)) == "v0" })

        // See the directory under the mount through a bind mount of its parent (a bind mount of a
        // directory does not carry the mounts below it), and plant a symlink where /app/k would be.
        let view = cli.path("view")
        try FileManager.default.createDirectory(atPath: view, withIntermediateDirectories: true)
        #expect(try MountAgentTests.shell("mount --bind \(cli.directory.path) \(view)", in: cli).status == 0)
        defer { _ = try? MountAgentTests.shell("umount -l \(view)", in: cli) }
        let victim = cli.path("victim")
        try "untouched\n".write(toFile: victim, atomically: true, encoding: .utf8)
        #expect(try MountAgentTests.shell("mkdir -p \(view)/M-kv/app && ln -s \(victim) \(view)/M-kv/app/k", in: cli).status == 0)
        let underBefore = try MountAgentTests.shell("find \(view)/M-kv | sort", in: cli).stdout

        // Pulled away lazily, as `fusermount3 -uz` or `umount -l` would.
        #expect(try MountAgentTests.shell("umount -l \(mnt)", in: cli).status == 0)
        try agent.run(["set", "/app/k", "evil"])
        try agent.run(["set", "/app/new", "evil"])

        var status: [String: Any] = [:]
        #expect(try Readiness.wait {
            status = try JSONSerialization.jsonObject(with: Data(try agent.run(["status", "--json"]).stdout.utf8)) as? [String: Any] ?? [:]
            return (status["mountLosses"] as? Int ?? 0) >= 1
        }, "status: \(status)")
        #expect(agent.log.contains("unmounted from outside"), "\(agent.log.suffix(2000))")
        // Mounted again, showing the current values.
        #expect(Readiness.wait { (try? String(contentsOfFile: mnt + "/app/k", encoding: .utf8)) == "evil" }, "\(agent.log.suffix(2000))")
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "untouched\n")
        #expect(try MountAgentTests.shell("find \(view)/M-kv | sort", in: cli).stdout == underBefore, "something was written under the mount")
        #expect(try MountAgentTests.shell("readlink \(view)/M-kv/app/k", in: cli).out == victim)

        // Watchers of the tree mounted again see changes made elsewhere: its replay helper lives
        // on. It used to die at once with the thread that mounted again (its parent-death signal
        // follows that thread), and no change was replayed from then on (Docs/filesystem.md §The
        // replay helper).
        let (watcher, events) = try MountAgentTests.watch("\(mnt)/app", events: "close_write")
        defer { kill(watcher.processIdentifier, SIGKILL); watcher.waitUntilExit() }
        try agent.run(["set", "/app/k", "after the remount"])
        #expect(events.wait(timeout: 30) { $0.contains("CLOSE_WRITE,CLOSE k") }, "no event after the remount: \(agent.log.suffix(2000))")
        #expect(!agent.log.contains("replay helper ended"), "\(agent.log.suffix(2000))")
    }
}
