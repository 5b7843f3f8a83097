import KVGossipControl

/// Every error the client throws. `reason` is the agent's refusal code (Docs/contract.md §Limits and errors)
/// when the agent refused, or one of the client's own codes (`unavailable`, `timeout`, `closed`,
/// `no-identity`).
public struct KVClientError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A reason code. Open-ended on purpose: an agent newer than this library may send codes it
    /// does not name, and they still reach the caller intact.
    public struct Reason: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        /// The code as it appears on the wire, e.g. `no-authority`.
        public let rawValue: String
        /// A code by its wire name.
        public init(rawValue: String) { self.rawValue = rawValue }
        /// The wire name.
        public var description: String { rawValue }

        /// The record's signature does not verify.
        public static let badSignature = Reason(rawValue: "bad-signature")
        /// No valid grant chain lets the signer write the key, or the operation needs the local socket.
        public static let noAuthority = Reason(rawValue: "no-authority")
        /// A grant of the chain is revoked.
        public static let revoked = Reason(rawValue: "revoked")
        /// A grant of the chain is outside its validity at the record's time.
        public static let expired = Reason(rawValue: "expired")
        /// The record's time is too far ahead of the agent's clock.
        public static let clockSkew = Reason(rawValue: "clock-skew")
        /// A value, pool or frame is over its limit.
        public static let tooLarge = Reason(rawValue: "too-large")
        /// The key is not a valid key (Docs/contract.md §Keys).
        public static let invalidKey = Reason(rawValue: "invalid-key")
        /// The request or object could not be decoded.
        public static let malformed = Reason(rawValue: "malformed")
        /// The request is incomplete or names an invalid pattern.
        public static let badRequest = Reason(rawValue: "bad-request")
        /// The key has no value on the agent.
        public static let notFound = Reason(rawValue: "not-found")
        /// The agent failed internally.
        public static let `internal` = Reason(rawValue: "internal")
        /// No agent could be reached, or the connection broke during the request.
        public static let unavailable = Reason(rawValue: "unavailable")
        /// The agent serves as many control connections (or watches) as it allows.
        public static let busy = Reason(rawValue: "busy")
        /// The agent did not answer within the client's call timeout.
        public static let timeout = Reason(rawValue: "timeout")
        /// The client was closed.
        public static let closed = Reason(rawValue: "closed")
        /// A client-signed write was asked for without a signing identity.
        public static let noIdentity = Reason(rawValue: "no-identity")
    }

    /// Why the operation failed.
    public let reason: Reason
    /// A sentence for the person reading the log.
    public let message: String
    /// For a `revoked` refusal: the ids (hex) of the revoked grants the agent named, so the caller
    /// can drop them from its proofs.
    public let revokedGrants: [String]

    /// Makes an error; the client builds these from agent answers and connection failures.
    public init(_ reason: Reason, _ message: String, revokedGrants: [String] = []) {
        self.reason = reason
        self.message = message
        self.revokedGrants = revokedGrants
    }

    init(_ error: ControlError, revokedGrants: [String] = []) {
        self.init(Reason(rawValue: error.reason), error.message, revokedGrants: revokedGrants)
    }

    /// `reason: message`, as the CLI prints refusals.
    public var description: String { "\(reason): \(message)" }
}
