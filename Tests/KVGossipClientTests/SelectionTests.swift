import Foundation
import KVGossipClient
import Testing

extension AgentTests {
    /// `list(patterns:)`: the live values matching any of several patterns, from one request.
    @Test func listOfSeveralPatternsAnswersTheirUnion() async throws {
        let sandbox = try Sandbox()
        let root = try await sandbox.keygen("root.key")
        let agent = try await sandbox.startAgent("A", root: root)
        for (k, v) in [("/app/a", "1"), ("/app/b/c", "2"), ("/web/x", "3"), ("/other", "4"), ("/app/gone", "5")] {
            #expect(try await agent.cli(["set", k, v]).status == 0)
        }
        #expect(try await agent.cli(["rm", "/app/gone"]).status == 0)
        let client = KVClient(endpoints: [.unix(agent.socket)], options: testOptions())
        let records = try await client.list(patterns: ["/app/*", "/web/x", "/app/b/**", "/none/**"])
        #expect(records.map(\.key) == ["/app/a", "/app/b/c", "/web/x"], "tombstones and unselected keys are left out")
        #expect(records.map { $0.string ?? "" } == ["1", "2", "3"])
        #expect(try await client.list(patterns: []).isEmpty)
        await #expect(throws: KVClientError.self) { try await client.list(patterns: ["not a pattern"]) }
        await client.close()
    }
}
