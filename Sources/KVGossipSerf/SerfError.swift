/// Failures of the Serf shell. Agent errors keep the agent's own text, which is what an operator
/// can search for.
public enum SerfError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The agent answered with a non-empty `Error`.
    case agent(command: String, message: String)
    /// The bytes from the agent are not the protocol (bad msgpack, unexpected shape or Seq); the
    /// connection is closed because the stream can no longer be trusted.
    case protocolViolation(String)
    /// A reply body that decoded as msgpack but lacks a field or has the wrong type.
    case malformedReply(String)
    /// The connection is gone (or never came up).
    case connectionClosed(String)
    /// No reply within the request timeout.
    case timeout(command: String)
    /// A request the client refuses to send (it would misbehave on the agent).
    case invalidRequest(String)
    /// The session is between connections.
    case notConnected
    /// The embedded agent could not be started or stopped.
    case process(String)

    public var description: String {
        switch self {
        case .agent(let command, let message): "serf \(command): \(message)"
        case .protocolViolation(let detail): "serf RPC protocol violation: \(detail)"
        case .malformedReply(let detail): "malformed serf reply: \(detail)"
        case .connectionClosed(let detail): "serf RPC connection closed: \(detail)"
        case .timeout(let command): "serf \(command): no reply in time"
        case .invalidRequest(let detail): "invalid serf request: \(detail)"
        case .notConnected: "not connected to serf"
        case .process(let detail): "serf agent: \(detail)"
        }
    }
}
