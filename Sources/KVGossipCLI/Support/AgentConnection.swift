import ArgumentParser
import Foundation
import KVGossipControl

/// `--control` for every command that talks to an agent: the flag, else $KVGOSSIP_CONTROL, else
/// the system socket.
struct ControlOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The agent's control socket, or HOST:PORT of its TCP control listener. Default: $KVGOSSIP_CONTROL, else \(ControlEndpoint.defaultSocketPath).",
        valueName: "PATH"))
    var control: String?

    var endpoint: ControlEndpoint {
        ControlEndpoint(parsing: control ?? ProcessInfo.processInfo.environment["KVGOSSIP_CONTROL"] ?? ControlEndpoint.defaultSocketPath)
    }

    func connect() async throws -> ControlClient {
        do { return try await ControlClient.connect(endpoint) } catch let error as ControlError {
            throw CLIError("\(error.message) (is `kvgossip agent` running? set --control or KVGOSSIP_CONTROL)")
        }
    }

    /// One request, one answer; a refusal becomes an error that carries its reason code.
    func call(_ op: ControlRequestOperation, _ build: (inout ControlRequest) -> Void = { _ in }) async throws -> ControlResponse {
        let client = try await connect()
        let response = try await client.call(build, op: op)
        await client.close()
        if !response.ok, let error = response.error { throw CLIError("\(error.reason): \(error.message)") }
        return response
    }
}

typealias ControlRequestOperation = ControlRequest.Operation
