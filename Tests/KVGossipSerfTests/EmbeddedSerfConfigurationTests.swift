import Foundation
import Testing
@testable import KVGossipSerf

/// What a spawned `serf agent` is told beyond its flags. EmbeddedSerfTests start real agents with
/// this configuration, so a key Serf does not know (it refuses them) fails there.
@Suite struct EmbeddedSerfConfigurationTests {
    @Test func aFailedMemberIsTriedAgainEveryTenSeconds() throws {
        let c = EmbeddedSerfConfiguration(nodeName: "n1", directory: "/var/lib/kvgossip/serf", syncPort: 7947)
        #expect(c.arguments.contains("-config-file=/var/lib/kvgossip/serf/serf-tuning.json"))
        #expect(!c.arguments.contains { $0.hasSuffix("serf-secrets.json") }, "no secrets file without secrets")
        let tuning = try JSONSerialization.jsonObject(with: Data(c.tuningJSON.utf8)) as? [String: String]
        #expect(tuning == ["reconnect_interval": "10s"])
    }
}
