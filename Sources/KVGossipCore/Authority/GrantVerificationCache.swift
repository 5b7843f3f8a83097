import Synchronization

/// Remembers which grant signatures verified, by grant id, so a chain shared by many records is
/// verified once rather than once per record. Bounded: when full it forgets everything and starts
/// over, which costs only re-verification.
public final class GrantVerificationCache: Sendable {
    private let verdicts = Mutex<[Hash256: Bool]>([:])
    private let capacity: Int

    public init(capacity: Int = 65_536) {
        self.capacity = capacity
    }

    public func signatureIsValid(_ grant: Grant) -> Bool {
        if let known = verdicts.withLock({ $0[grant.id] }) { return known }
        let verdict = grant.signatureIsValid
        verdicts.withLock {
            if $0.count >= capacity { $0.removeAll(keepingCapacity: true) }
            $0[grant.id] = verdict
        }
        return verdict
    }

    public var count: Int { verdicts.withLock { $0.count } }
}
