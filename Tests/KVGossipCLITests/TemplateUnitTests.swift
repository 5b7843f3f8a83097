import Foundation
import KVGossipTestTraits
import Testing

/// `systemd/kvgossip-template@.service`: an instance verifies cleanly, runs after the agent without
/// being stopped with it, and reads the instance's file in /etc/kvgossip/templates.
@Suite(.integration) struct TemplateUnitTests {
    @Test func anInstancePassesSystemdAnalyzeVerify() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let unit = try String(contentsOf: SystemdTests.packageRoot.appendingPathComponent("systemd/kvgossip-template@.service"), encoding: .utf8)
        #expect(unit.contains("ExecStart=/usr/local/bin/kvgossip template --config /etc/kvgossip/templates/%i.json"))
        #expect(unit.contains("After=kvgossip.service"))
        #expect(unit.contains("Wants=kvgossip.service") && !unit.contains("Requires=") && !unit.contains("BindsTo="))
        // The unit names the installed binary; verify a copy pointing at the one just built.
        try unit.replacingOccurrences(of: "/usr/local/bin/kvgossip", with: CLIProcess.binary)
            .write(toFile: cli.path("kvgossip-template@.service"), atomically: true, encoding: .utf8)
        let (status, output) = try SystemdTests.analyzeVerify(cli.path("kvgossip-template@demo.service"))
        #expect(status == 0, "systemd-analyze verify: \(output)")
        // verify only warns about a setting it cannot parse; none is expected.
        #expect(output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(output)")
    }
}
