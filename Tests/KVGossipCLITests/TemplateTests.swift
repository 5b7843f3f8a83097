import Foundation
import KVGossipTestSupport
import KVGossipTestTraits
import Testing

/// `kvgossip template` against real agents: renders, re-renders once per settled change, runs the
/// command once, keeps the old file when a render or a check fails, and stays quiet when the
/// agent restarts with nothing changed.
///
/// Every template reads `/probe` without letting it into the output. Writing `/probe`, then waiting
/// until the tool's status shows a cycle whose snapshot was asked for after that write, is a
/// barrier: that snapshot holds every earlier write and the probe, and the status is written when
/// its cycle ends, so every render and command those writes will ever cause has happened.
@Suite(.serialized, .integration) struct TemplateTests {
    static let probe = #"{% if "/probe"|exists %}{% endif %}"#

    static func fileInfo(_ path: String) -> stat? {
        var info = stat()
        return lstat(path, &info) == 0 ? info : nil
    }

    struct World {
        let cli: CLIProcess
        let agent: AgentProcess

        init() throws {
            cli = try CLIProcess()
            let root = try cli.keygen("root.key")
            agent = try AgentProcess(cli: cli, root: root, extraArgs: ["--key", "root.key"])
        }

        func set(_ values: [(String, String)]) throws {
            for (key, value) in values { try agent.mint(key, value) }
        }

        /// The barrier described on the suite.
        func settle(_ tool: TemplateProcess) throws {
            // The mark comes before the probe: a cycle that asked for its snapshot after it sees
            // everything committed before this call, even if the test thread stalls after the mint.
            let mark = TemplateProcess.nowMs()
            try agent.mint("/probe", UUID().uuidString)
            #expect(tool.waitForSnapshot(after: mark), "no snapshot after the probe; log:\n\(tool.log.suffix(3000))")
        }

        func template(_ text: String, to output: String = "out.conf", extra: [String] = [], exec: String? = "echo ran >> commands") throws -> TemplateProcess {
            try cli.write("t.tmpl", text + Self.probeLine)
            return try TemplateProcess(
                cli: cli, arguments: ["--control", agent.socket, "--template", "t.tmpl:\(output)"] + (exec.map { ["--exec", $0] } ?? []) + extra)
        }

        static let probeLine = TemplateTests.probe
    }

    @Test func fiveKeysRenderAndOneChangeRendersOnceAndRunsTheCommandOnce() throws {
        let w = try World()
        defer { w.cli.cleanUp() }
        try w.set([("/app/a", "1"), ("/app/b", "2"), ("/app/c", "3"), ("/app/d", "4"), ("/app/e", "5")])
        let tool = try w.template(#"{{ "/app/a"|key }} {{ "/app/b"|key }} {{ "/app/c"|key }} {{ "/app/d"|key }} {{ "/app/e"|key }}"#)
        defer { tool.stop() }
        #expect(Readiness.wait { w.cli.read("out.conf") == "1 2 3 4 5" }, "log:\n\(tool.log.suffix(3000))")
        #expect(tool.waitFor("commands", atLeast: 1))
        try w.settle(tool)
        #expect(w.cli.lines("commands") == 1)

        try w.set([("/app/c", "33")])
        #expect(Readiness.wait { w.cli.read("out.conf") == "1 2 33 4 5" })
        try w.settle(tool)
        #expect(w.cli.lines("commands") == 2, "one change, one command")
        #expect(tool.count("installs") == 2)
        #expect(tool.count("failures") == 0)
    }

    @Test func fiftyChangesInABurstRunTheCommandOnceOrTwiceAndTheFileEndsAtTheFinalState() throws {
        let w = try World()
        defer { w.cli.cleanUp() }
        try w.set([("/burst/k", "start")])
        let tool = try w.template(#"k={{ "/burst/k"|key }}"#, extra: ["--wait", "2s:60s"])
        defer { tool.stop() }
        #expect(Readiness.wait { w.cli.read("out.conf") == "k=start" })
        try w.settle(tool)
        let before = w.cli.lines("commands")
        let start = Date()
        for i in 0..<50 { try w.agent.mint("/burst/k", "v\(i)") }
        let burst = Date().timeIntervalSince(start)
        try w.settle(tool)
        let commands = w.cli.lines("commands") - before
        #expect((1...2).contains(commands), "\(commands) commands for a burst of 50 changes in \(Int(burst * 1000)) ms")
        #expect(w.cli.read("out.conf") == "k=v49")
        #expect(try w.agent.run(["get", "/burst/k"]).stdout == "v49")
    }

    @Test func aRemovedKeyFallsBackToItsDefaultOrFailsTheRenderAsWritten() throws {
        let w = try World()
        defer { w.cli.cleanUp() }
        try w.set([("/opt/x", "1"), ("/req/y", "2")])
        let tool = try w.template(#"x={{ "/opt/x"|key:"default" }} y={{ "/req/y"|key }}"#)
        defer { tool.stop() }
        #expect(Readiness.wait { w.cli.read("out.conf") == "x=1 y=2" })

        #expect(try w.agent.run(["rm", "/opt/x"]).status == 0)
        #expect(Readiness.wait { w.cli.read("out.conf") == "x=default y=2" })

        try w.settle(tool)
        let commands = w.cli.lines("commands")
        #expect(try w.agent.run(["rm", "/req/y"]).status == 0)
        #expect(tool.waitFor("failures", atLeast: 1))
        #expect(tool.lastError?.contains("/req/y") == true, "\(tool.status)")
        try w.settle(tool)
        #expect(w.cli.read("out.conf") == "x=default y=2", "a failed render keeps the old file")
        #expect(w.cli.lines("commands") == commands, "and runs no command")

        try w.set([("/req/y", "3")])
        #expect(Readiness.wait { w.cli.read("out.conf") == "x=default y=3" })
        #expect(Readiness.wait { tool.lastError == nil })
    }

    @Test func aCheckThatRejectsTheOutputKeepsTheOldFile() throws {
        let w = try World()
        defer { w.cli.cleanUp() }
        try w.set([("/c", "ok-1")])
        let tool = try w.template(#"{{ "/c"|key }}"#, extra: ["--check", #"echo "$KVGOSSIP_DESTINATION" > checked; grep -q '^ok' "$KVGOSSIP_STAGED""#])
        defer { tool.stop() }
        #expect(Readiness.wait { w.cli.read("out.conf") == "ok-1" })
        #expect(w.cli.read("checked") == "out.conf\n", "the check is told the destination")
        try w.settle(tool)
        let commands = w.cli.lines("commands")

        try w.set([("/c", "bad")])
        #expect(tool.waitFor("failures", atLeast: 1))
        #expect(tool.lastError?.contains("rejected") == true, "\(tool.status)")
        #expect(w.cli.read("out.conf") == "ok-1")
        #expect(w.cli.lines("commands") == commands)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: w.cli.directory.path).filter { $0.hasPrefix(".out.conf") }
        #expect(leftovers.isEmpty, "staged files are removed: \(leftovers)")

        try w.set([("/c", "ok-2")])
        #expect(Readiness.wait { w.cli.read("out.conf") == "ok-2" })
    }

    /// A command that fails leaves the files it was run for in place (they passed their checks)
    /// and is the cycle's reason; the next cycle whose command succeeds clears it
    /// (Docs/templates.md §Failures).
    @Test func aFailingCommandKeepsTheNewFilesAndIsTheReason() throws {
        let w = try World()
        defer { w.cli.cleanUp() }
        try w.set([("/c", "ok-1")])
        let tool = try w.template(#"{{ "/c"|key }}"#, exec: "echo ran >> commands; ! grep -q fail out.conf")
        defer { tool.stop() }
        #expect(Readiness.wait { w.cli.read("out.conf") == "ok-1" })
        #expect(Readiness.wait { w.cli.lines("commands") == 1 })
        #expect(tool.lastError == nil, "\(tool.status)")

        try w.set([("/c", "fail-2")])
        #expect(Readiness.wait { tool.lastError?.contains("the command") == true }, "\(tool.status)")
        #expect(w.cli.read("out.conf") == "fail-2", "the file stays replaced")
        #expect(w.cli.lines("commands") == 2)

        try w.set([("/c", "ok-3")])
        #expect(Readiness.wait { w.cli.read("out.conf") == "ok-3" && tool.lastError == nil }, "\(tool.status)")
        #expect(w.cli.lines("commands") == 3)
    }

    /// A rendered file is synced before it replaces the old one: cut the power of the disk it is
    /// on right after the render shows, and the file still holds the new bytes, not an empty or old
    /// file (Docs/templates.md §Render cycle). The disk model keeps names at once, so the directory's
    /// sync is not what this checks.
    @Test func aRenderedFileSurvivesAPowerCut() throws {
        guard PowerCutDisk.canBeBuilt() else { return }
        let w = try World()
        defer { w.cli.cleanUp() }
        let disk = try PowerCutDisk(in: w.cli)
        defer { disk.stop() }
        let output = disk.mountpoint + "/out.conf"
        try w.set([("/c", "first")])
        let tool = try w.template(#"{{ "/c"|key }}"#, to: output, exec: nil)
        defer { tool.stop() }
        for value in ["first", "second"] {
            if value != "first" { try w.set([("/c", value)]) }
            #expect(Readiness.wait { (try? String(contentsOfFile: output, encoding: .utf8)) == value }, "\(tool.log.suffix(2000))")
            try disk.cut()
            try disk.powerOn()
            #expect((try? String(contentsOfFile: output, encoding: .utf8)) == value, "after the cut")
        }
    }

    @Test func anAgentRestartWithNothingChangedRendersNothingAndRunsNothing() throws {
        let w = try World()
        defer { w.cli.cleanUp() }
        try w.set([("/r/a", "1"), ("/r/b", "2")])
        let tool = try w.template(#"{% for e in "/r"|under %}{{ e.path }}={{ e.value }};{% endfor %}"#)
        defer { tool.stop() }
        #expect(Readiness.wait { w.cli.read("out.conf") == "a=1;b=2;" })
        try w.settle(tool)
        let (renders, commands, snapshots) = (tool.count("renders"), w.cli.lines("commands"), tool.count("snapshots"))
        let inode = Self.fileInfo(w.cli.path("out.conf"))?.st_ino
        #expect(inode != nil)

        // The same agent (data directory, socket, port) stops and starts again.
        let args = w.agent.process.arguments!
        let mark = TemplateProcess.nowMs()
        w.agent.stop()
        let again = try AgentProcess(cli: w.cli, name: "agent", data: w.agent.data, socket: w.agent.socket, arguments: args)
        defer { again.stop() }
        // The tool reconnected, resynced its subscriptions and read a fresh snapshot…
        #expect(tool.waitForSnapshot(after: mark), "log:\n\(tool.log.suffix(3000))")
        #expect(tool.count("snapshots") > snapshots)
        // …which says what the last one said: no render, no write, no command.
        #expect(tool.count("renders") == renders)
        #expect(w.cli.lines("commands") == commands)
        #expect(Self.fileInfo(w.cli.path("out.conf"))?.st_ino == inode, "the file was not replaced")

        // A restart of the tool itself finds every file as it would write it: no command either.
        tool.stop()
        let second = try TemplateProcess(
            cli: w.cli, name: "second", arguments: ["--control", again.socket, "--template", "t.tmpl:out.conf", "--exec", "echo ran >> commands"])
        defer { second.stop() }
        #expect(second.waitFor("snapshots", atLeast: 1))
        #expect(Readiness.wait { second.status["dependencies"] as? [String] == ["/probe", "/r/**"] })
        #expect(second.waitFor("renders", atLeast: 2))
        #expect(second.count("installs") == 0)
        #expect(w.cli.lines("commands") == commands)
    }

    /// A key named by another key's value is found by rendering, followed, and let go once the
    /// template stops reading it.
    @Test func aKeyNamedByAnotherKeysValueIsFollowedAndLetGoWhenNoLongerRead() throws {
        let w = try World()
        defer { w.cli.cleanUp() }
        try w.set([("/active", "/pool/blue"), ("/pool/blue", "10.0.0.1"), ("/pool/green", "10.0.0.2")])
        let tool = try w.template(#"{{ "/active"|key|trim|key }}"#)
        defer { tool.stop() }
        #expect(Readiness.wait { w.cli.read("out.conf") == "10.0.0.1" }, "log:\n\(tool.log.suffix(3000))")
        #expect(tool.status["dependencies"] as? [String] == ["/active", "/pool/blue", "/probe"])

        try w.set([("/active", "/pool/green")])
        #expect(Readiness.wait { w.cli.read("out.conf") == "10.0.0.2" })
        try w.settle(tool)
        #expect(tool.status["dependencies"] as? [String] == ["/active", "/pool/green", "/probe"], "/pool/blue is let go")
        #expect(w.cli.lines("commands") == 2)
    }

    @Test func aChangeMadeOnAnotherHostRendersHere() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let agents = try GossipTests.cluster(cli, root: root, peers: [[1], [0]])
        let (there, here) = (agents[0], agents[1])
        try there.mint("/remote/k", "first")
        #expect(try Readiness.wait { try here.run(["get", "/remote/k"]).stdout == "first" })
        // A template set file, as the unit reads one; its first control socket has no agent, so
        // the client fails over to the second. Relative paths are read from the file's directory.
        try FileManager.default.createDirectory(atPath: cli.path("set"), withIntermediateDirectories: true)
        try cli.write("set/t.tmpl", #"k={{ "/remote/k"|key }}"#)
        try cli.write("set/remote.json", """
            {"control": ["\(cli.path("nobody-here.sock"))", "\(here.socket)"],
             "templates": [{"source": "t.tmpl", "destination": "../out.conf"}],
             "exec": "echo ran >> \(cli.path("commands"))", "wait": "50ms:1s"}
            """)
        let tool = try TemplateProcess(cli: cli, arguments: ["--config", cli.path("set/remote.json")])
        defer { tool.stop() }
        #expect(Readiness.wait { cli.read("out.conf") == "k=first" })

        try there.mint("/remote/k", "second")
        #expect(Readiness.wait { cli.read("out.conf") == "k=second" }, "log:\n\(tool.log.suffix(3000))")
        #expect(Readiness.wait { cli.lines("commands") == 2 })
    }

    @Test func severalTemplatesRenderAllOrNothingAndTheCommandWaitsForAll() throws {
        let w = try World()
        defer { w.cli.cleanUp() }
        try w.set([("/m/a", "a1"), ("/m/b", "b1")])
        try w.cli.write("one.tmpl", #"{{ "/m/a"|key }}"# + TemplateTests.probe)
        try w.cli.write("two.tmpl", #"{{ "/m/b"|key }}"#)
        // The command records what both files held when it ran, and which files it was told changed.
        let tool = try TemplateProcess(cli: w.cli, arguments: [
            "--control", w.agent.socket, "--template", "one.tmpl:one.out", "--template", "two.tmpl:two.out", "--mode", "0640",
            "--owner", "nobody:nogroup", "--exec", #"echo "$(cat one.out) $(cat two.out)" >> commands; echo "$KVGOSSIP_CHANGED" >> changed"#,
        ])
        defer { tool.stop() }
        #expect(Readiness.wait { w.cli.read("commands") == "a1 b1\n" }, "log:\n\(tool.log.suffix(3000))")
        // The command writes `changed` after `commands`.
        #expect(Readiness.wait { w.cli.read("changed") == "one.out\ntwo.out\n" })
        for file in ["one.out", "two.out"] {
            let info = Self.fileInfo(w.cli.path(file))
            #expect(info.map { $0.st_mode & 0o7777 } == 0o640)
            #expect(info?.st_uid == getpwnam("nobody")?.pointee.pw_uid && info?.st_gid == getgrnam("nogroup")?.pointee.gr_gid)
        }

        // One template cannot render: neither file changes, though the other one could.
        #expect(try w.agent.run(["rm", "/m/b"]).status == 0)
        try w.set([("/m/a", "a2")])
        #expect(tool.waitFor("failures", atLeast: 1))
        try w.settle(tool)
        #expect(w.cli.read("one.out") == "a1")
        #expect(w.cli.read("commands") == "a1 b1\n")

        try w.set([("/m/b", "b2")])
        #expect(Readiness.wait { w.cli.read("commands") == "a1 b1\na2 b2\n" })
        #expect(Readiness.wait { w.cli.read("changed") == "one.out\ntwo.out\none.out\ntwo.out\n" })
        #expect(w.cli.read("one.out") == "a2")
        #expect(w.cli.read("two.out") == "b2")
    }

    @Test func onceExitsWithTheOutcomeAndABrokenTemplateStopsAtStart() throws {
        let w = try World()
        defer { w.cli.cleanUp() }
        try w.cli.write("t.tmpl", #"{{ "/once/k"|key }}"#)
        let missing = try w.cli.run(["template", "--once", "--control", w.agent.socket, "--template", "t.tmpl:out.conf"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("/once/k"), "\(missing.stderr)")
        #expect(!FileManager.default.fileExists(atPath: w.cli.path("out.conf")))

        try w.set([("/once/k", "v")])
        let ok = try w.cli.run(["template", "--once", "--control", w.agent.socket, "--template", "t.tmpl:out.conf"])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(w.cli.read("out.conf") == "v")

        try w.cli.write("bad.tmpl", "line\n{% for x in %}")
        let broken = try w.cli.run(["template", "--control", w.agent.socket, "--template", "bad.tmpl:bad.out"])
        #expect(broken.status == 1)
        #expect(broken.stderr.contains("bad.tmpl:2"), "\(broken.stderr)")

        try w.cli.write("last.tmpl", #"{{ "/once/k"|key|split:","|last }} {{ xs.last }}"#)
        let dotLast = try w.cli.run(["template", "--once", "--control", w.agent.socket, "--template", "last.tmpl:last.out"])
        #expect(dotLast.status != 0)
        #expect(dotLast.stderr.contains("`.last`"), "\(dotLast.stderr)")
    }

    /// A set whose second destination is a directory is not replaced at all: the first file keeps
    /// its old bytes (it used to be replaced before the second rename failed;
    /// Docs/templates.md §Render cycle).
    @Test func aSetThatCannotBeReplacedWholeIsNotReplacedAtAll() throws {
        let w = try World()
        defer { w.cli.cleanUp() }
        try w.set([("/s", "new")])
        try w.cli.write("t.tmpl", #"{{ "/s"|key }}"#)
        try w.cli.write("first.out", "old")
        try FileManager.default.createDirectory(atPath: w.cli.path("second.out"), withIntermediateDirectories: false)
        let run = try w.cli.run(["template", "--once", "--control", w.agent.socket, "--template", "t.tmpl:first.out", "--template", "t.tmpl:second.out"])
        #expect(run.status == 1 && run.stderr.contains("Is a directory"), "\(run)")
        #expect(w.cli.read("first.out") == "old")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: w.cli.directory.path).filter { $0.contains(".tmp-") }
        #expect(leftovers.isEmpty, "staged files are removed: \(leftovers)")
    }

    /// `--once` started before its agent waits for it (a unit ordered only after the agent's start,
    /// or a boot script), then renders and exits 0 (Docs/templates.md §Usage).
    @Test func onceWaitsForAnAgentThatIsNotUpYet() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        try cli.write("t.tmpl", #"{{ "/late/k"|key:"none" }}"#)
        let tool = try TemplateProcess(cli: cli, arguments: ["--once", "--control", cli.path("late.sock"), "--template", "t.tmpl:out.conf"])
        defer { tool.stop() }
        // It is running and asking: the log says the agent cannot be reached yet.
        #expect(Readiness.wait { tool.log.contains("late.sock") }, "\(tool.log)")
        #expect(tool.process.isRunning, "it waits instead of exiting: \(tool.log)")
        let agent = try AgentProcess(cli: cli, name: "late", root: root, extraArgs: ["--key", "root.key"])
        defer { agent.stop() }
        #expect(Readiness.wait { !tool.process.isRunning }, "it finished once the agent answered")
        #expect(tool.process.terminationStatus == 0, "\(tool.log)")
        #expect(cli.read("out.conf") == "none")
    }

    /// Over TCP the template tool verifies what it reads against the root it is given: without
    /// `--root` it refuses to start (a root learned from the far end would vouch for anything);
    /// with it, it renders.
    @Test func overTCPTheRootIsRequiredAndRecordsAreVerifiedAgainstIt() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let port = LoopbackPort.free()
        let agent = try AgentProcess(cli: cli, root: root, extraArgs: ["--key", "root.key", "--control-listen", "127.0.0.1:\(port)"])
        try agent.mint("/tcp/k", "over tcp")
        try cli.write("t.tmpl", #"{{ "/tcp/k"|key }}"#)
        let bare = try cli.run(["template", "--once", "--control", "127.0.0.1:\(port)", "--template", "t.tmpl:out.conf"])
        #expect(bare.status != 0 && bare.stderr.contains("root: 127.0.0.1:\(port) is reached over TCP"), "\(bare.stderr)")
        // The client proves the root's key to the TCP listener (Docs/security.md §The TCP control listener).
        let proof = ["KVGOSSIP_CONTROL_KEY": cli.path("root.key")]
        let rooted = try cli.run(["template", "--once", "--control", "127.0.0.1:\(port)", "--root", root, "--template", "t.tmpl:out.conf"], environment: proof)
        #expect(rooted.status == 0, "\(rooted.stderr)")
        #expect(cli.read("out.conf") == "over tcp")
        let other = try cli.keygen("other.key")
        let wrong = try cli.run(["template", "--once", "--control", "127.0.0.1:\(port)", "--root", other, "--template", "t.tmpl:wrong.conf"], environment: proof)
        // An agent of another root is refused at the handshake, before any record is read.
        #expect(wrong.status != 0, "records of another root are not rendered: \(wrong.stderr)")
        #expect(!FileManager.default.fileExists(atPath: cli.path("wrong.conf")))
    }

    /// Commands start with every signal at its default (the tool ignores SIGPIPE and SIGQUIT, and an
    /// ignored disposition passes to every process a command starts: `yes | head` would never end
    /// by SIGPIPE), and one that outlives --command-timeout is stopped with its process group and
    /// counts as a rejection. They hold none of the tool's descriptors: its connection to the agent
    /// stayed open in any daemon a command left behind.
    @Test func commandsGetDefaultSignalsAndAreStoppedAfterTheirTimeout() throws {
        let w = try World()
        defer { w.cli.cleanUp() }
        try w.set([("/s/k", "1")])
        let tool = try w.template(#"{{ "/s/k"|key }}"#, extra: [
            "--check", #"if grep -q slow "$KVGOSSIP_STAGED"; then sleep 613 & sleep 613; fi"#, "--command-timeout", "1s",
        ], exec: "ls -l /proc/self/fd > descriptors; grep SigIgn /proc/self/status > ignored")
        defer { tool.stop() }
        // /proc/self/status says "SigIgn:\t<hex mask>".
        func ignored() -> UInt64? {
            guard let line = w.cli.read("ignored"), line.hasSuffix("\n"), let hex = line.split(separator: "\t").last else { return nil }
            return UInt64(hex.trimmingCharacters(in: .whitespacesAndNewlines), radix: 16)
        }
        #expect(Readiness.wait { ignored() != nil })
        let descriptors = w.cli.read("descriptors") ?? ""
        #expect(descriptors.contains("/dev/null") && !descriptors.contains("socket:"), "the command holds the tool's descriptors:\n\(descriptors)")
        let mask = ignored() ?? .max
        for (name, signal) in [("SIGPIPE", SIGPIPE), ("SIGQUIT", SIGQUIT), ("SIGTERM", SIGTERM), ("SIGINT", SIGINT)] {
            #expect(mask & (1 << (UInt64(signal) - 1)) == 0, "\(name) ignored in the command: mask \(String(mask, radix: 16))")
        }

        try w.set([("/s/k", "slow")])
        #expect(tool.waitFor("failures", atLeast: 1))
        #expect(tool.lastError?.contains("stopped after its timeout") == true, "\(tool.status)")
        #expect(w.cli.read("out.conf") == "1")
        // The check's background sleep went with its process group.
        #expect(Readiness.wait { !Self.processes().contains("sleep 613 ") }, "\(Self.processes().filter { $0.contains("sleep") })")
    }

    /// Command lines of every process, from /proc.
    static func processes() -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.filter { Int($0) != nil }.compactMap { pid in
            FileManager.default.contents(atPath: "/proc/\(pid)/cmdline").map { String(decoding: $0, as: UTF8.self).replacingOccurrences(of: "\0", with: " ") }
        }
    }

    /// The agent has a peer it cannot reach, so what it mints stays pending-push: a dirty value
    /// that --wait-synced will not render until the peer comes and acknowledges it.
    @Test func waitSyncedHoldsWhileAUsedKeyIsDirty() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let peerPort = LoopbackPort.free()
        let agent = try AgentProcess(cli: cli, name: "A", root: root, extraArgs: [
            "--key", "root.key", "--name", "A", "--peer", "127.0.0.1:\(peerPort)", "--sync-interval", "3600",
        ])
        let agentPort = agent.process.arguments![agent.process.arguments!.firstIndex(of: "--listen")! + 1]
        try agent.mint("/ws/k", "v")
        try cli.write("t.tmpl", #"{{ "/ws/k"|key }}"#)
        let tool = try TemplateProcess(cli: cli, arguments: ["--control", agent.socket, "--template", "t.tmpl:out.conf", "--wait-synced"])
        defer { tool.stop() }
        #expect(Readiness.wait { (tool.status["waitingFor"] as? [String])?.first?.hasPrefix("/ws/k (") == true }, "\(tool.status)")
        #expect(!FileManager.default.fileExists(atPath: cli.path("out.conf")))

        let peer = try AgentProcess(cli: cli, name: "B", root: root, extraArgs: [
            "--key", "root.key", "--name", "B", "--listen", "127.0.0.1:\(peerPort)", "--peer", agentPort, "--sync-interval", "3600",
        ])
        defer { peer.stop() }
        #expect(try agent.run(["sync"]).status == 0)
        #expect(Readiness.wait { cli.read("out.conf") == "v" }, "\(tool.status)")
    }
}
