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
    /// Parsed patterns by grant id (the id covers the pattern bytes); nil for a grant with a pattern
    /// that does not parse.
    private let parsed = Mutex<[Hash256: [Pattern]?]>([:])
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

    /// Whether one of the grant's patterns matches `key`, parsing its patterns once per grant id.
    /// A grant whose patterns do not all parse matches nothing.
    public func matches(_ grant: Grant, _ key: Key) -> Bool {
        let known = parsed.withLock { $0[grant.id] }
        let patterns: [Pattern]?
        if let known {
            patterns = known
        } else {
            let all = grant.patterns
            patterns = all.count == grant.patternTexts.count ? all : nil
            parsed.withLock {
                if $0.count >= capacity { $0.removeAll(keepingCapacity: true) }
                $0[grant.id] = .some(patterns)
            }
        }
        return patterns?.contains { $0.matches(key) } ?? false
    }

    public var count: Int { verdicts.withLock { $0.count } }
}
