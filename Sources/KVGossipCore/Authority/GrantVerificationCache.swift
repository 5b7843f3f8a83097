import Synchronization

/// Remembers which grant signatures verified, so a chain shared by many records is verified once
/// rather than once per record. Keyed by the grant id *and* the signature bytes: the id covers only
/// the signed bytes, and a copy of a genuine grant carrying other signature bytes must be judged on
/// its own bytes, as a node without the cache would judge it (or nodes would disagree about the
/// same object). Bounded: when full it forgets everything and starts over, which costs only
/// re-verification.
public final class GrantVerificationCache: Sendable {
    private struct Entry: Hashable {
        let id: Hash256
        let signature: Signature
    }

    private let verdicts = Mutex<[Entry: Bool]>([:])
    private let capacity: Int

    public init(capacity: Int = 65_536) {
        self.capacity = capacity
    }

    public func signatureIsValid(_ grant: Grant) -> Bool {
        let entry = Entry(id: grant.id, signature: grant.signature)
        if let known = verdicts.withLock({ $0[entry] }) { return known }
        let verdict = grant.signatureIsValid
        verdicts.withLock {
            if $0.count >= capacity { $0.removeAll(keepingCapacity: true) }
            $0[entry] = verdict
        }
        return verdict
    }

    public var count: Int { verdicts.withLock { $0.count } }
}
