/// Why a record, grant or revocation was not accepted. The raw values are the reason codes that
/// appear in logs, API answers and CLI messages.
public enum RefusalReason: String, Sendable, CaseIterable, Codable {
    case badSignature = "bad-signature"
    case noAuthority = "no-authority"
    case revoked
    case expired
    case clockSkew = "clock-skew"
    case tooLarge = "too-large"
    case invalidKey = "invalid-key"
    case malformed
}

/// A refusal: the reason code plus a sentence for the human reading the log.
public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: RefusalReason
    public let detail: String

    public init(_ reason: RefusalReason, _ detail: String) {
        self.reason = reason
        self.detail = detail
    }

    public var description: String { "\(reason.rawValue): \(detail)" }
}

/// Size and depth bounds (Docs/contract.md §Limits and errors). One value so a test or a config file can
/// change them together.
public struct Limits: Sendable, Equatable {
    public var maxValueBytes = 1 << 20
    public var maxPoolGrants = 32
    /// The grants of one record's pool together, encoded (a chain of 8 grants of 16 patterns of
    /// 100 bytes is about 15 KiB).
    public var maxPoolBytes = 64 * 1024
    public var maxChainLength = 8
    public var maxPatternsPerGrant = 16
    public var maxFrameBytes = 4 << 20
    /// How far (ms) a record's physical time may be ahead of the local clock before it is refused.
    public var maxSkewMs: UInt64 = 30_000

    public init() {}
    public static let `default` = Limits()
}
