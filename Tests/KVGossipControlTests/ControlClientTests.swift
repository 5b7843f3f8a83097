import Foundation
import KVGossipControl
import KVGossipTestSupport
import Testing

/// The client's side of a connection the agent refuses (Docs/operations.md §Control API limits).
@Suite struct ControlClientTests {
    /// An agent over its cap answers a new connection with a refusal of id 0 and closes it. The
    /// client's reader may take in the refusal and the end before a request is sent, or after;
    /// either way the request fails with the agent's reason, never a bare "closed". (The second
    /// request on the connection is sent after the reader has ended, so it is always the first case.)
    @Test func aRefusalReadBeforeARequestIsItsReason() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-control-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/busy.sock"
        let refusal = try JSONEncoder().encode(ControlResponse.failure(0, "busy", "this agent already serves 1 control connections"))
        guard let server = LoopbackServer(unixPath: path, serve: { fd, _ in _ = RawSocket(borrowing: fd).sendFrame(Array(refusal)) }) else {
            throw ControlError(reason: "internal", message: "cannot listen at \(path)")
        }
        defer { server.stop() }

        let client = try await ControlClient.connect(.unix(path))
        var reasons: [String] = []
        for _ in 0..<2 {
            do {
                _ = try await client.call({ _ in }, op: .status)
                reasons.append("answered")
            } catch let error as ControlError {
                reasons.append("\(error.reason): \(error.message)")
            }
        }
        await client.close()
        let others = reasons.filter { $0 != "busy: this agent already serves 1 control connections" }
        #expect(others.isEmpty, "\(others)")
    }
}
