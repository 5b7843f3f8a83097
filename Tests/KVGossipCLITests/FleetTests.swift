import Foundation
import KVGossipTestTraits
import Testing

/// Builds the Debian package and runs three hosts from it (`Scripts/test-fleet`): three booted
/// `systemd-nspawn` containers on a bridge, the same `.deb` and `agent.json` on each, then peers,
/// a write read everywhere, a path unit that fires once, a reboot and a restart under writes that
/// lose nothing acknowledged, an upgrade that restarts once and keeps the data, a refused
/// downgrade, and remove/purge. Uses the release binary `Scripts/test` builds (like
/// `SystemdBootTests`) and the rootfs cache in /var/cache/kvgossip-test.
@Suite(.serialized, .integration) struct FleetTests {
    @Test func threeHostsInstalledFromThePackageFormAFleetAndSurviveRebootRestartAndUpgrade() throws {
        if let problem = SystemdBootTests.containerTestProblem() {
            Issue.record("\(problem)")
            return
        }
        let run = try ScriptRun("Scripts/test-fleet", arguments: ["--no-build"])
        let status = run.wait(timeout: 1200)
        let output = run.output
        #expect(status == 0, "test-fleet exited \(status.map(String.init) ?? "only when stopped after 1200 s"):\n\(output)")
        for check in [
            "ok: host 3 without a root key: the unit is not started",
            "ok: host 1: the unit is active", "ok: host 3: /etc/kv is mounted",
            "ok: host 1: kvgossip status lists the other two hosts",
            "ok: host 3: cat /etc/kv/app/db/url = postgres://db2",
            "ok: host 3: user.kvgossip.signer is host 1's node key",
            "ok: host 3: the path unit ran once for one write",
            "ok: host 2 after the reboot: all",
            "ok: host 3: every one of",
            "ok: host 1: the upgrade started the agent once",
            "ok: host 1: the downgrade onto a newer schema is refused",
            "ok: host 3 after purge: /etc/kvgossip and /var/lib/kvgossip are gone",
            "PASS:",
        ] {
            #expect(output.contains(check), "missing \"\(check)\" in:\n\(output)")
        }
        // Nothing of this run is left: its rootfs copies, its containers, its network namespaces.
        if let work = run.field("work directory") {
            #expect(!FileManager.default.fileExists(atPath: work), "\(work) left behind")
            #expect(Leftovers.mounts(under: work).isEmpty)
            #expect(Leftovers.processes(mentioning: work).isEmpty, "processes left: \(Leftovers.processes(mentioning: work))")
            let id = work.split(separator: ".").last.map(String.init) ?? "?"
            for name in ["kvgf-br-\(id)", "kvgf-1-\(id)", "kvgf-2-\(id)", "kvgf-3-\(id)"] {
                #expect(!FileManager.default.fileExists(atPath: "/run/netns/\(name)"), "network namespace \(name) left")
            }
        } else {
            Issue.record("the script did not print its work directory:\n\(output)")
        }
    }
}
