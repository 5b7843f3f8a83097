/// What the agent did with a write.
public struct WriteResult: Sendable, Hashable {
    /// The agent's verdict on an accepted (not refused) write.
    public struct Outcome: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        /// The agent's word for it, e.g. `accepted`.
        public let rawValue: String
        /// An outcome by the agent's word for it.
        public init(rawValue: String) { self.rawValue = rawValue }
        /// The agent's word.
        public var description: String { rawValue }

        /// The record is now the key's value.
        public static let accepted = Outcome(rawValue: "accepted")
        /// The agent already held this exact record.
        public static let duplicate = Outcome(rawValue: "duplicate")
        /// A newer record already holds the key; the write was valid but lost (Docs/contract.md §Ordering).
        public static let superseded = Outcome(rawValue: "superseded")
    }

    /// The verdict.
    public let outcome: Outcome
    /// The key's winning record on the agent after the write (the newer one when superseded).
    public let record: KeyRecord?

    /// Makes a result; the client builds these from agent answers.
    public init(outcome: Outcome, record: KeyRecord?) {
        self.outcome = outcome
        self.record = record
    }
}
