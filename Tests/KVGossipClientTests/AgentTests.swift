import Foundation
import KVGossipClient
import KVGossipTestTraits
import Testing

/// Tests against real `kvgossip agent` processes on loopback. One suite, serialized, so a shared
/// two-core machine is not asked to run several clusters at once; each test has its own sandbox
/// (directory, sockets, ports) and its agents die with it.
@Suite(.serialized, .integration) struct AgentTests {
    /// `kvgossip ls --json PATTERN` on `agent`: key → (value, digest).
    static func listing(_ agent: SandboxAgent, _ pattern: String) async throws -> [String: (value: String, digest: String)] {
        let r = try await agent.cli(["ls", "--json", pattern])
        guard r.status == 0 else { throw SandboxError("ls failed: \(r.stderr)") }
        let array = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]] ?? []
        var out: [String: (value: String, digest: String)] = [:]
        for item in array {
            guard let key = item["key"] as? String, let value = item["value"] as? String, let digest = item["digest"] as? String else { continue }
            out[key] = (String(decoding: Data(base64Encoded: value) ?? Data(), as: UTF8.self), digest)
        }
        return out
    }
}
