import Foundation
import KVGossipClient
import KVGossipCore
import KVGossipTestSupport
import Testing

extension AgentTests {
    /// On a TCP endpoint the client proves `options.identity` and checks the agent against
    /// `options.cluster` (Docs/client.md §Endpoints and failover): with both it follows a key;
    /// without the root it never connects and says what it lacks; under another root it keeps
    /// trying and connects to nothing. (An impostor agent: ControlAuthenticationTests.)
    @Test func overTCPTheClientProvesItsKeyAndChecksTheAgent() async throws {
        let sandbox = try Sandbox()
        let root = try await sandbox.keygen("root.key")
        let tcpPort = LoopbackPort.free()
        let a = try await sandbox.startAgent("A", root: root, extra: ["--control-listen", "127.0.0.1:\(tcpPort)"])
        let identity = try ClientIdentity(keyFile: sandbox.path("root.key"))

        var options = testOptions()
        options.identity = identity
        options.cluster = try PublicKey(text: root)
        let client = KVClient(addresses: ["127.0.0.1:\(tcpPort)"], options: options)
        let sub = try await client.subscribeKey("/svc/x")
        _ = try await a.cli(["set", "/svc/x", "1"])
        _ = try await first(sub.valueChanges) { $0.string == "1" }
        await sub.unsubscribe()
        await client.close()

        var noRoot = testOptions()
        noRoot.identity = identity
        noRoot.callTimeout = .seconds(2)
        let lost = KVClient(addresses: ["127.0.0.1:\(tcpPort)"], options: noRoot)
        await #expect { try await lost.get("/svc/x") } throws: {
            ($0 as? KVClientError)?.reason == .noRoot && "\($0)".contains("KVClientOptions.cluster")
        }
        #expect(await lost.statistics.connections == 0)
        await lost.close()

        var otherRoot = noRoot
        otherRoot.cluster = SigningKey.generate().publicKey
        let wary = KVClient(addresses: ["127.0.0.1:\(tcpPort)"], options: otherRoot)
        #expect(await eventually(.seconds(10)) { await wary.statistics.connectFailures >= 2 })
        await #expect { try await wary.get("/svc/x") } throws: { ($0 as? KVClientError)?.reason == .unavailable }
        #expect(await wary.statistics.connections == 0, "an agent of another cluster is never used")
        await wary.close()
    }
}
