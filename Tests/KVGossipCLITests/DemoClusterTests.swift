import Foundation
import KVGossipTestTraits
import Testing

/// `Scripts/demo-cluster` end to end with the binary under test: every narrated step must behave
/// (exit 0), and whatever way the script ends (success, failure, Ctrl-C) nothing it made may be
/// left: no namespace, no mount, no agent, Serf or watcher process, no temp dir.
@Suite(.serialized, .integration) struct DemoClusterTests {
    static let script = "Scripts/demo-cluster"

    static func requirements() -> String? {
        if getuid() != 0 { return "needs root (network namespaces and FUSE)" }
        for tool in ["/usr/bin/serf", "/usr/bin/fusermount3", "/usr/bin/inotifywait", "/usr/bin/getfattr"]
        where !FileManager.default.isExecutableFile(atPath: tool) {
            return "\(tool) is missing (Scripts/install-deps installs it)"
        }
        return nil
    }

    /// Checks that nothing the run made is left, using the names and PIDs the script printed.
    static func expectNothingLeft(_ run: ScriptRun, sourceLocation: SourceLocation = #_sourceLocation) {
        guard let tmp = run.field("temp dir:"), tmp.hasPrefix("/tmp/kvgdemo.") else {
            Issue.record("the script did not print its temp dir:\n\(run.output)", sourceLocation: sourceLocation)
            return
        }
        let id = String(tmp.dropFirst("/tmp/kvgdemo.".count))
        #expect(!FileManager.default.fileExists(atPath: tmp), "temp dir \(tmp) left behind", sourceLocation: sourceLocation)
        #expect(Leftovers.mounts(under: tmp).isEmpty, "mounts left: \(Leftovers.mounts(under: tmp))", sourceLocation: sourceLocation)
        let namespaces = Leftovers.namespaces(prefix: "kvgdemo-\(id)-")
        #expect(namespaces.isEmpty, "namespaces left: \(namespaces)", sourceLocation: sourceLocation)
        // Agents and their Serf carry the temp dir in their arguments.
        let processes = Leftovers.processes(mentioning: tmp)
        #expect(processes.isEmpty, "processes left: \(processes)", sourceLocation: sourceLocation)
        // Every PID the teardown reported stopping (the watcher's arguments are relative paths).
        for pair in (run.field("stopped by PID:") ?? "").split(separator: " ") {
            let parts = pair.split(separator: "=")
            guard parts.count == 2, let pid = Int32(parts[1]), Leftovers.isLive(pid) else { continue }
            let line = Leftovers.commandLine(pid)
            #expect(!(line.contains("kvgossip") || line.contains("serf") || line.contains("inotifywait")),
                    "\(parts[0]) (pid \(pid)) still runs: \(line)", sourceLocation: sourceLocation)
        }
    }

    @Test func theDemoShowsEveryStepAndLeavesNothingBehind() throws {
        if let missing = Self.requirements() { Issue.record("\(missing)"); return }
        let started = Date()
        let run = try ScriptRun(Self.script, arguments: ["--bin", CLIProcess.binary])
        let status = run.wait(timeout: 120)
        let output = run.output
        #expect(status == 0, "demo-cluster exited \(status.map(String.init) ?? "only when stopped after 120 s"):\n\(output)")
        for step in [
            "every host sees the two others through Serf",
            "host 2 has the value host 1 wrote",
            "host 3's watcher saw the remote change",
            "signer is host 1's node key",
            "Permission denied",
            "host 1 holds /app/** only",
            "/team/owner is gone on every host",
            "host 3 can no longer write /team/**",
            "every step behaved as expected",
        ] {
            #expect(output.contains(step), "missing step \"\(step)\" in:\n\(output)")
        }
        print("demo-cluster took \(Int(Date().timeIntervalSince(started))) s")
        Self.expectNothingLeft(run)
    }

    @Test func ctrlCInTheMiddleTearsEverythingDown() throws {
        if let missing = Self.requirements() { Issue.record("\(missing)"); return }
        let run = try ScriptRun(Self.script, arguments: ["--bin", CLIProcess.binary])
        // Interrupt once all three agents and their Serf run.
        #expect(run.waitForOutput("serfs:", timeout: 60), "the agents did not start:\n\(run.output)")
        kill(run.pid, SIGINT)
        let status = run.wait(timeout: 60)
        #expect(status == 130, "expected exit 130 after SIGINT, got \(status.map(String.init) ?? "none"):\n\(run.output)")
        #expect(run.output.contains("interrupted"))
        Self.expectNothingLeft(run)
    }

    @Test func aFailingStepFailsTheScriptAndStillTearsDown() throws {
        if let missing = Self.requirements() { Issue.record("\(missing)"); return }
        // A "kvgossip" that fails every command: the script must stop at the first step that needs it.
        let run = try ScriptRun(Self.script, arguments: ["--bin", "/bin/false"])
        let status = run.wait(timeout: 60)
        #expect(status != nil && status != 0, "demo-cluster with a failing binary exited \(status.map(String.init) ?? "none"):\n\(run.output)")
        #expect(!run.output.contains("every step behaved as expected"))
        Self.expectNothingLeft(run)
    }
}
