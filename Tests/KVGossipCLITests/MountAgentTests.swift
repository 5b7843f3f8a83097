import Foundation
import KVGossipTestTraits
import Testing
import KVGossipTestSupport

/// The agent with its FUSE mount, driven by real programs and by the CLI.
@Suite(.serialized, .integration) struct MountAgentTests {
    static func shell(_ command: String, in cli: CLIProcess) throws -> CLIProcess.Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command]
        p.currentDirectoryURL = cli.directory
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return CLIProcess.Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    /// Lazily detaches whatever is left mounted at `path`, so a failed test does not leave a mount.
    static func detach(_ path: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/fusermount3")
        p.arguments = ["-uz", path]
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try? p.run()
        p.waitUntilExit()
    }

    /// `inotifywait -m` on a directory, its output collected, returned once it says its watches are
    /// set; the caller kills it by PID (it inherits the test thread's blocked SIGTERM, so SIGKILL).
    static func watch(_ directory: String, events: String) throws -> (Process, OutputCollector) {
        let watcher = Process()
        watcher.executableURL = URL(fileURLWithPath: "/usr/bin/inotifywait")
        watcher.arguments = ["-m", "--format", "%e %f", "-e", events, directory]
        let output = OutputCollector(), status = OutputCollector()
        watcher.standardOutput = output.pipe
        watcher.standardError = status.pipe
        try watcher.run()
        guard status.wait(timeout: 30, { $0.contains("Watches established") }) else {
            kill(watcher.processIdentifier, SIGKILL)
            throw CLIError("inotifywait did not set its watches: \(status.output)")
        }
        return (watcher, output)
    }

    static func mountedAgent(_ cli: CLIProcess, name: String = "M", root: String, extra: [String] = []) throws -> AgentProcess {
        try AgentProcess(cli: cli, name: name, root: root, extraArgs: [
            "--key", "root.key", "--mount", cli.path("\(name)-kv"), "--listen", "127.0.0.1:\(LoopbackPort.free())",
        ] + extra)
    }

    /// SIGTERM as soon as the agent holds its data directory, while it is still starting (the
    /// mount not up yet): it finishes starting, then stops as it would at any other time,
    /// unmounting, and exits 0. Before, its handler came only once the mount was up: such a
    /// signal killed it outright (status 143 and a dead mount left behind), and one arriving just
    /// as the handler was set up was lost, leaving the agent running.
    @Test func aStopSentWhileStartingIsHonouredCleanly() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let mountpoint = cli.path("M-kv")
        defer { Self.detach(mountpoint) }
        for round in 0..<5 {
            let (data, socket) = (cli.path("M\(round)-data"), cli.path("M\(round).sock"))
            let agent = try AgentProcess(
                cli: cli, name: "M\(round)", data: data, socket: socket,
                arguments: [
                    "agent", "--data", data, "--root", root, "--key", "root.key", "--control", socket, "--no-serf",
                    "--log-level", "info", "--listen", "127.0.0.1:\(LoopbackPort.free())", "--mount", mountpoint,
                ],
                waitForSocket: false)
            defer { agent.stop(signal: SIGKILL) }
            #expect(Readiness.wait(every: 0.001) { FileManager.default.fileExists(atPath: data + "/agent.lock") || !agent.process.isRunning })
            kill(agent.pid, SIGTERM)
            let exited = Readiness.wait(timeout: 30) { !agent.process.isRunning }
            #expect(exited, "round \(round): the agent was still running 30 s after SIGTERM:\n\(agent.log)")
            guard exited else { return }
            #expect(agent.process.terminationReason == .exit && agent.process.terminationStatus == 0,
                    "round \(round): \(agent.process.terminationReason == .exit ? "exit" : "signal") \(agent.process.terminationStatus):\n\(agent.log)")
            #expect(!Unmounted.isMounted(mountpoint), "round \(round): the mount was left behind")
        }
    }

    /// Mounting over a directory that holds files hides them: the agent says so in `status` (and
    /// its log), and says nothing when the directory was empty. The files are there again after.
    @Test func aMountOverFilesWarnsThatTheyAreHidden() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let mountpoint = cli.path("W-kv")
        defer { Self.detach(mountpoint) }
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        try "old\n".write(toFile: mountpoint + "/left-by-hand", atomically: false, encoding: .utf8)
        let over = try AgentProcess(cli: cli, name: "W", root: root, extraArgs: ["--key", "root.key", "--mount", mountpoint])
        let warnings = try over.status()["warnings"] as? [String] ?? []
        #expect(warnings.contains { $0.contains("was not empty: its 1 entry is hidden") }, "\(warnings)")
        #expect(over.stop() == 0)
        #expect(FileManager.default.fileExists(atPath: mountpoint + "/left-by-hand"), "the hidden file is back once unmounted")

        try FileManager.default.removeItem(atPath: mountpoint + "/left-by-hand")
        let empty = try AgentProcess(cli: cli, name: "W", root: root, extraArgs: ["--key", "root.key", "--mount", mountpoint])
        let none = try empty.status()["warnings"] as? [String] ?? []
        #expect(!none.contains { $0.contains("not empty") }, "\(none)")
        #expect(empty.stop() == 0)
    }

    /// `kvgossip unmount` (the unit's ExecStopPost) on each kind of mount it can meet
    /// (Docs/operations.md §The systemd unit): a live one is only detached and its agent mounts it
    /// again; a hung one (its agent stopped with SIGSTOP) has its connection aborted and is
    /// detached, so the stopped agent can then be killed; a dead one (its agent SIGKILLed) is
    /// cleared the same way.
    @Test func kvgossipUnmountClearsALiveAHungAndADeadMount() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let mountpoint = cli.path("U-kv")
        defer { Self.detach(mountpoint) }
        func start() throws -> AgentProcess {
            let agent = try AgentProcess(cli: cli, name: "U", root: root, extraArgs: ["--key", "root.key", "--mount", mountpoint])
            try agent.run(["set", "/k", "v"])
            #expect(Readiness.wait { (try? String(contentsOfFile: mountpoint + "/k", encoding: .utf8)) == "v" })
            return agent
        }

        let live = try start()
        let detached = try cli.run(["unmount", mountpoint])
        #expect(detached.status == 0 && detached.stdout.contains("detached"), "\(detached)")
        #expect(Readiness.wait { (try? String(contentsOfFile: mountpoint + "/k", encoding: .utf8)) == "v" }, "the live agent did not mount again:\n\(live.log)")
        #expect(live.stop() == 0)

        let hung = try start()
        kill(hung.pid, SIGSTOP)
        let aborted = try cli.run(["unmount", mountpoint])
        kill(hung.pid, SIGCONT)
        #expect(aborted.status == 0 && aborted.stdout.contains("aborted the connection"), "\(aborted)")
        #expect(!Unmounted.isMounted(mountpoint), "the hung mount is still listed")
        hung.stop(signal: SIGKILL)

        let dead = try start()
        dead.stop(signal: SIGKILL)
        #expect(Unmounted.isMounted(mountpoint), "a SIGKILLed agent leaves its mount listed")
        // A user who may not abort or detach it is told so, not told it is done.
        if try Self.shell("runuser -u nobody -- \(CLIProcess.binary) --version", in: cli).status == 0 {
            let refused = try Self.shell("runuser -u nobody -- \(CLIProcess.binary) unmount \(mountpoint)", in: cli)
            #expect(refused.status != 0 && refused.stderr.contains("cannot detach"), "\(refused)")
            #expect(Unmounted.isMounted(mountpoint))
        } else {
            print("kvgossipUnmountClearsALiveAHungAndADeadMount: user nobody cannot run \(CLIProcess.binary); its part skipped")
        }
        let cleared = try cli.run(["unmount", mountpoint])
        #expect(cleared.status == 0 && !Unmounted.isMounted(mountpoint), "\(cleared)")
        let again = try cli.run(["unmount", mountpoint])
        #expect(again.status == 0 && again.stdout.isEmpty, "nothing mounted: nothing to do, and success")
    }

    /// `kvgossip unmount` clears KVGossip's mounts only: another filesystem's FUSE mount at the
    /// path is left mounted, and the command says so and fails.
    @Test func kvgossipUnmountLeavesAnotherFilesystemsMountAlone() throws {
        guard PowerCutDisk.canBeBuilt() else { return }
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let disk = try PowerCutDisk(in: cli)
        defer { disk.stop() }
        let refused = try cli.run(["unmount", disk.mountpoint])
        #expect(refused.status != 0 && refused.stderr.contains("not a KVGossip one"), "\(refused)")
        #expect(Readiness.mountAnswers(at: disk.mountpoint), "the other filesystem is still mounted and serving")
    }

    @Test func cliChangesRaiseInotifyEventsAndFreshReads200Times() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let agent = try Self.mountedAgent(cli, root: root)
        defer { agent.stop(); Self.detach(cli.path("M-kv")) }
        let mnt = cli.path("M-kv")
        try agent.run(["set", "/app/k", "v0"])

        let (watcher, events) = try Self.watch("\(mnt)/app", events: "modify,close_write,create,delete,moved_to")
        defer { kill(watcher.processIdentifier, SIGKILL); watcher.waitUntilExit() }
        func waitFor(_ predicate: (String) -> Bool) -> Bool { events.wait(timeout: 30, predicate) }
        var misses = 0
        for i in 1...200 {
            let before = events.output.components(separatedBy: "CLOSE_WRITE,CLOSE k").count
            #expect(try agent.run(["set", "/app/k", "v\(i)"]).status == 0)
            if !waitFor({ $0.components(separatedBy: "CLOSE_WRITE,CLOSE k").count > before }) { misses += 1 }
            let read = try String(contentsOfFile: "\(mnt)/app/k", encoding: .utf8)
            if read != "v\(i)" { misses += 1 }
        }
        #expect(misses == 0)
        #expect(events.output.contains("MODIFY k"))
        try agent.run(["set", "/app/new", "n"])
        #expect(waitFor { $0.contains("CREATE new") })
        try agent.run(["rm", "/app/new"])
        #expect(waitFor { $0.contains("DELETE new") }, "events: \(events.output.suffix(300))")
        #expect(!FileManager.default.fileExists(atPath: "\(mnt)/app/new"))
    }

    @Test func killDashNineDuringWritesLosesNoAcknowledgedWrite() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        var agent = try Self.mountedAgent(cli, root: root)
        defer { agent.stop(); Self.detach(cli.path("M-kv")) }
        let mnt = cli.path("M-kv")
        #expect(try Self.shell("mkdir -p \(mnt)/w", in: cli).status == 0)
        // Each write's number is recorded only after its close() returned 0.
        let writer = Process()
        writer.executableURL = URL(fileURLWithPath: "/bin/sh")
        writer.arguments = ["-c", "i=0; while true; do i=$((i+1)); echo $i > \(mnt)/w/k$((i % 50)) && echo $i >> \(cli.path("acked")); done"]
        writer.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try writer.run()
        defer { kill(writer.processIdentifier, SIGKILL); writer.waitUntilExit() }
        func ackedWrites() -> [Int] {
            ((try? String(contentsOfFile: cli.path("acked"), encoding: .utf8)) ?? "").split(separator: "\n").compactMap { Int($0) }
        }
        #expect(Readiness.wait { ackedWrites().count > 100 }, "only \(ackedWrites().count) acknowledged writes")
        // Freeze the writer between syscalls, read the tree hash, then crash the agent.
        kill(writer.processIdentifier, SIGSTOP)
        #expect(Readiness.wait { ProcessState.of(writer.processIdentifier) == "T" }, "the writer did not stop")
        let before = try GossipTests.treeHash(agent)
        let pid = agent.pid
        kill(pid, SIGKILL)
        agent.process.waitUntilExit()
        kill(writer.processIdentifier, SIGKILL)
        writer.waitUntilExit()

        // Same data dir and mountpoint: the stale mount is recovered and the tree is intact.
        agent = try Self.mountedAgent(cli, root: root)
        #expect(try GossipTests.treeHash(agent) == before)
        let acked = ackedWrites()
        var latest: [Int: Int] = [:]
        for n in acked { latest[n % 50] = n }
        for (slot, n) in latest {
            let value = try String(contentsOfFile: "\(mnt)/w/k\(slot)", encoding: .utf8)
            // The newest acknowledged write, or one written after it whose close() was cut short.
            #expect(Int(value.trimmingCharacters(in: .whitespacesAndNewlines)).map { $0 >= n } == true, "k\(slot): \(value) < \(n)")
        }
    }

    @Test func threeHostsWithMountsEchoOnOneCatAndWatchOnTheOthers() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/serf") else {
            Issue.record("serf is not installed")
            return
        }
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        var agents: [AgentProcess] = []
        defer {
            for a in agents { a.stop() }
            for n in ["A", "B", "C"] { Self.detach(cli.path("\(n)-kv")) }
        }
        let hosts = ["A", "B", "C"].map { ($0, LoopbackPort.free(), LoopbackPort.free(), LoopbackPort.free()) }
        for (i, h) in hosts.enumerated() {
            let pub = try cli.keygen("\(h.0).key")
            #expect(try cli.run(["grant", "--issuer-key", "root.key", "--to", pub, "--pattern", "/**", "--out", "\(h.0).grant"]).status == 0)
            var args = [
                "--key", "\(h.0).key", "--name", h.0, "--mount", cli.path("\(h.0)-kv"), "--listen", "127.0.0.1:\(h.1)", "--sync-interval", "3600",
                "--serf-spawn", "--serf-bind", "127.0.0.1:\(h.2)", "--serf-rpc", "127.0.0.1:\(h.3)", "--serf-profile", "local",
            ]
            if i > 0 { args += ["--join", "127.0.0.1:\(hosts[0].2)"] }
            let data = cli.path("\(h.0)-data"), socket = cli.path("\(h.0).sock")
            agents.append(try AgentProcess(cli: cli, name: h.0, data: data, socket: socket,
                                           arguments: ["agent", "--data", data, "--root", root, "--control", socket] + args))
            #expect(try agents[i].run(["grants", "add", "\(h.0).grant"]).status == 0)
        }
        #expect(try Readiness.wait { try agents.allSatisfy { try $0.run(["status"]).stdout.components(separatedBy: "last-sync=").count == 3 } })
        let (a, b, c) = (cli.path("A-kv"), cli.path("B-kv"), cli.path("C-kv"))
        #expect(try Self.shell("mkdir -p \(a)/app/db && echo first > \(a)/app/db/url", in: cli).status == 0)
        #expect(Readiness.wait { (try? String(contentsOfFile: "\(c)/app/db/url", encoding: .utf8)) == "first\n" })

        // A program on C watching the directory, as a config-reloading service would.
        let (watcher, events) = try Self.watch("\(c)/app/db", events: "modify,close_write,moved_to")
        defer { kill(watcher.processIdentifier, SIGKILL); watcher.waitUntilExit() }

        #expect(try Self.shell("echo 'postgres://db2' > \(a)/app/db/url", in: cli).status == 0)
        for m in [b, c] {
            #expect(Readiness.wait { (try? String(contentsOfFile: "\(m)/app/db/url", encoding: .utf8)) == "postgres://db2\n" })
        }
        #expect(events.wait(timeout: 10) { $0.contains("CLOSE_WRITE,CLOSE url") }, "events: \(events.output)")
        let xattr = try Self.shell("getfattr -d -m user.kvgossip \(c)/app/db/url", in: cli).stdout
        let signer = try cli.run(["pubkey", "--key", "A.key"]).out
        #expect(xattr.contains("user.kvgossip.signer=\"\(signer)\""), "\(xattr)")
        #expect(xattr.contains("user.kvgossip.chain="))
    }
}
