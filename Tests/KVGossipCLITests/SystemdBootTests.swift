import Foundation
import KVGossipTestTraits
import Testing

/// Boots a real systemd in a Debian container (`Scripts/test-systemd-boot`) with KVGossip installed
/// by `Scripts/install --root-dir` and checks that the enabled unit brings the mount up at boot,
/// serves writes through it and stops cleanly, and that an enabled `kvgossip-template@demo.service`
/// renders its file at boot and again after a write. The first run debootstraps a rootfs into
/// /var/cache/kvgossip-test (network access to the Debian mirror needed once); later runs reuse it.
///
/// The script installs the release binary built with a static Swift stdlib. `swift test` holds the
/// package's build lock, so the test cannot build it; `Scripts/test` builds it before the suite.
@Suite(.serialized, .integration) struct SystemdBootTests {
    static let buildCommand = "swift build -c release --product kvgossip --static-swift-stdlib"

    /// Why the release binary cannot be used, or nil.
    static func releaseBinaryProblem() -> String? {
        let root = SystemdTests.packageRoot
        let binary = root.appendingPathComponent(".build/release/kvgossip").path
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: binary),
              let built = attributes[.modificationDate] as? Date
        else { return "\(binary) is missing" }
        // Stale if any source or the manifest changed after the build.
        var newest: (Date, String)?
        var candidates = ["Package.swift", "Package.resolved"].map { root.appendingPathComponent($0) }
        if let walker = FileManager.default.enumerator(at: root.appendingPathComponent("Sources"), includingPropertiesForKeys: [.contentModificationDateKey]) {
            for case let url as URL in walker { candidates.append(url) }
        }
        for url in candidates {
            guard let date = try? url.resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate else { continue }
            if newest == nil || date > newest!.0 { newest = (date, url.path) }
        }
        if let newest, newest.0 > built { return "\(binary) is older than \(newest.1)" }
        return nil
    }

    /// Why a container test cannot run here (recorded as the test's failure), or nil.
    static func containerTestProblem() -> String? {
        guard getuid() == 0 else { return "needs root (debootstrap, systemd-nspawn, nsenter, ip netns)" }
        return releaseBinaryProblem().map { "\($0); build it first: \(buildCommand) (Scripts/test does)" }
    }

    @Test func theUnitMountsTheTreeAtBootInARealSystemd() throws {
        if let problem = Self.containerTestProblem() {
            Issue.record("\(problem)")
            return
        }
        let started = Date()
        let run = try ScriptRun("Scripts/test-systemd-boot", arguments: ["--no-build"])
        // A first run debootstraps (about 40 s here, longer on a slow mirror); later runs take ~10 s.
        let status = run.wait(timeout: 900)
        let output = run.output
        #expect(status == 0, "test-systemd-boot exited \(status.map(String.init) ?? "only when stopped after 900 s"):\n\(output)")
        for check in [
            "ok: systemctl is-active kvgossip = active",
            "ok: /etc/kv is in the container's /proc/mounts",
            "ok: Debian's serf.service, enabled, did not start without a configuration",
            "ok: cat /etc/kv/app/x = v",
            "ok: user.kvgossip.signer is the container's node key",
            "ok: systemctl is-active kvgossip-template@demo = active",
            "ok: the template unit rendered /etc/demo.conf = x=v after the write",
            "ok: the template unit's command ran at boot and after the write",
            "ok: after stop: kvgossip-template@demo keeps running without the agent",
            "ok: after stop: kvgossip is inactive",
            "ok: after stop: /etc/kv is no longer mounted",
            "ok: systemd-nspawn exited 0 after poweroff",
            "PASS:",
        ] {
            #expect(output.contains(check), "missing \"\(check)\" in:\n\(output)")
        }
        print("test-systemd-boot took \(Int(Date().timeIntervalSince(started))) s; \(run.field("timings:") ?? "")")

        // Nothing of this run is left: its working copy, its container, its processes.
        if let fresh = run.field("fresh rootfs")?.split(separator: " ").first {
            let work = URL(fileURLWithPath: String(fresh)).deletingLastPathComponent().path
            #expect(!FileManager.default.fileExists(atPath: work), "\(work) left behind")
            #expect(Leftovers.mounts(under: work).isEmpty)
            #expect(Leftovers.processes(mentioning: work).isEmpty, "processes left: \(Leftovers.processes(mentioning: work))")
        } else {
            Issue.record("the script did not print its working rootfs:\n\(output)")
        }
    }
}
