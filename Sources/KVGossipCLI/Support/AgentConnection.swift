import ArgumentParser
import Foundation
import KVGossipControl
import KVGossipCore

/// `--control` for every command that talks to an agent: the flag, else $KVGOSSIP_CONTROL, else
/// the system socket. A TCP listener also needs this client's key, its grants and the cluster's
/// root (Docs/security.md §The TCP control listener).
struct ControlOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The agent's control socket, or HOST:PORT of its TCP control listener. Default: $KVGOSSIP_CONTROL, else \(ControlEndpoint.defaultSocketPath).",
        valueName: "PATH"))
    var control: String?
    @Option(name: .customLong("control-key"), help: ArgumentHelp(
        "Over TCP: the secret key file this client proves to the agent. Default: $KVGOSSIP_CONTROL_KEY.", valueName: "FILE"))
    var controlKey: String?
    @Option(name: .customLong("control-grant"), help: ArgumentHelp(
        "Over TCP: grant files chaining --control-key to the root (repeatable). Default: $KVGOSSIP_CONTROL_GRANTS (colon-separated).",
        valueName: "FILE"))
    var controlGrant: [String] = []
    @Option(name: .long, help: ArgumentHelp(
        "Over TCP: the cluster's root public key; an agent whose node key does not chain to it is refused. Default: $KVGOSSIP_ROOT.",
        valueName: "PUBKEY"))
    var root: String?

    var endpoint: ControlEndpoint {
        ControlEndpoint(parsing: control ?? ProcessInfo.processInfo.environment["KVGOSSIP_CONTROL"] ?? ControlEndpoint.defaultSocketPath)
    }

    /// What the TCP handshake needs; nil for a Unix socket (its file mode is its authentication).
    func credentials() throws -> ControlCredentials? {
        let endpoint = self.endpoint
        guard case .tcp = endpoint else { return nil }
        let proof = try RemoteClientFiles(key: controlKey, grants: controlGrant, root: root).load(for: endpoint)
        do {
            return try ControlCredentials(cluster: proof.root, signingKey: proof.key, grants: proof.grants)
        } catch {
            let refusal: Refusal = error
            throw CLIError("\(refusal.reason.rawValue): the agent would refuse --control-key \(proof.key.publicKey.fingerprint): \(refusal.detail) (give --control-grant FILE)")
        }
    }

    func connect() async throws -> ControlClient {
        let credentials = try credentials()
        do { return try await ControlClient.connect(endpoint, credentials: credentials) } catch let error as ControlError {
            // A refusal is the answer; only an agent that cannot be reached needs the hint.
            if error.reason != "unavailable" { throw CLIError("\(error.reason): \(error.message)") }
            throw CLIError("\(error.message) (is `kvgossip agent` running? set --control or KVGOSSIP_CONTROL)")
        }
    }

    /// One request, one answer; a refusal becomes an error that carries its reason code.
    func call(_ op: ControlRequestOperation, _ build: (inout ControlRequest) -> Void = { _ in }) async throws -> ControlResponse {
        try await withClient { try await $0.request(op, build) }
    }

    /// Runs `body` on one connection, closed after even when `body` throws: a command that asks
    /// several things pays for one connection (over TCP, one handshake), not one per request.
    func withClient<T>(_ body: (ControlClient) async throws -> T) async throws -> T {
        let client = try await connect()
        do {
            let result = try await body(client)
            await client.close()
            return result
        } catch {
            await client.close()
            throw error
        }
    }
}

extension ControlClient {
    /// How long a command waits for one answer: $KVGOSSIP_TIMEOUT seconds, else 30. An agent
    /// stopped (SIGSTOP) or wedged still accepts connections, and without a bound the command
    /// waited for good. (`sync`, which reconciles with peers for as long as that takes, asks with
    /// `call` and is not bounded.)
    static var answerTimeout: Duration {
        let seconds = ProcessInfo.processInfo.environment["KVGOSSIP_TIMEOUT"].flatMap(Double.init).flatMap { $0 > 0 && $0 <= 86_400 ? $0 : nil }
        return .milliseconds(Int((seconds ?? 30) * 1000))
    }

    /// One request, one answer on this connection; a refusal becomes an error that carries its
    /// reason code (as `ControlOptions.call` does).
    func request(_ op: ControlRequestOperation, _ build: (inout ControlRequest) -> Void = { _ in }) async throws -> ControlResponse {
        var template = ControlRequest(id: 0, op: op)
        build(&template)
        let asked = template
        let endpoint = self.endpoint
        let timeout = Self.answerTimeout
        let response = try await withThrowingTaskGroup(of: ControlResponse.self) { group in
            group.addTask {
                try await self.call({ request in
                    let id = request.id
                    request = asked
                    request.id = id
                }, op: op)
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw CLIError(
                    "the agent at \(endpoint) did not answer \(op.rawValue) within \(timeout) (is it stopped or overloaded? KVGOSSIP_TIMEOUT sets the wait)"
                        + (op.changesTheTree ? "; the write may still be applied when it resumes" : ""))
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
        if !response.ok, let error = response.error { throw CLIError("\(error.reason): \(error.message)") }
        return response
    }
}

extension ControlRequest.Operation {
    /// Whether an answer that never came may still mean the tree changed.
    var changesTheTree: Bool { [.mint, .put, .delete, .revoke, .grantsAdd].contains(self) }
}

typealias ControlRequestOperation = ControlRequest.Operation

/// Where a TCP client's key, grants and root come from: the flags, else $KVGOSSIP_CONTROL_KEY,
/// $KVGOSSIP_CONTROL_GRANTS (colon-separated) and $KVGOSSIP_ROOT. `kvgossip template` reads the
/// environment only.
struct RemoteClientFiles {
    let key: String?
    let grants: [String]
    let root: String?

    init(key: String? = nil, grants: [String] = [], root: String? = nil) {
        let environment = ProcessInfo.processInfo.environment
        self.key = key ?? environment["KVGOSSIP_CONTROL_KEY"]
        self.grants = grants.isEmpty ? (environment["KVGOSSIP_CONTROL_GRANTS"] ?? "").split(separator: ":").map(String.init) : grants
        self.root = root ?? environment["KVGOSSIP_ROOT"]
    }

    /// The key, grants and root, read; a sentence naming what is missing when `endpoint` cannot be
    /// reached without them.
    func load(for endpoint: ControlEndpoint) throws -> (key: SigningKey, grants: [Grant], root: PublicKey) {
        guard let key, let root else {
            let missing = [key == nil ? "--control-key FILE (or $KVGOSSIP_CONTROL_KEY)" : nil, root == nil ? "--root PUBKEY (or $KVGOSSIP_ROOT)" : nil]
            throw CLIError(
                "\(endpoint) is a TCP control listener, which serves only clients that prove a key the cluster admits: give "
                    + missing.compactMap { $0 }.joined(separator: " and ") + ", and --control-grant FILE for the grants chaining the key to the root")
        }
        let cluster: PublicKey
        do { cluster = try PublicKey(text: root) } catch { throw CLIError("--root: \(error)") }
        return (try Files.signingKey(key), try Files.grants(grants), cluster)
    }
}
