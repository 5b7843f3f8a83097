import Testing
@testable import KVGossipSerf

extension SerfIntegration {
    /// Errors from a real agent keep its words and leave the connection usable.
    @Suite struct ErrorTests {
        @Test func agentErrorsKeepTheirTextAndTheConnection() async throws {
            try await SerfTestCluster.with { cluster in
                let a = try await cluster.start("a")
                let client = try await SerfRPCClient.connect(to: a.rpcAddress)
                await #expect(throws: SerfError.agent(command: "stream", message: "Invalid event filter")) {
                    try await client.stream(type: "bogus")
                }
                await #expect(throws: SerfError.agent(command: "respond", message: "No pending queries matching ID")) {
                    try await client.respond(id: 42, payload: [1])
                }
                await #expect {
                    try await client.query(name: "big", payload: [UInt8](repeating: 7, count: 1100), timeout: .milliseconds(200))
                } throws: { error in
                    guard case .agent("query", let message) = error as? SerfError else { return false }
                    return message.contains("exceeds limit")
                }
                await #expect(throws: SerfError.invalidRequest("negative query timeout")) {
                    try await client.query(name: "q", payload: [], timeout: .milliseconds(-1))
                }
                // A stopped stream leaves nothing behind, and the connection is still good.
                let stream = try await client.stream(type: SerfEventFilter.memberEvents)
                try await client.stop(stream.seq)
                #expect(try await client.members().count == 1)
                #expect(client.outstandingSeqs == 1)  // the retired stream, kept so late records are skipped
                #expect(!client.isClosed)
                await client.close()
                await #expect(throws: SerfError.self) { try await client.members() }
            }
        }
    }
}
