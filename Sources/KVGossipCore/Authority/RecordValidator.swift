/// Everything a node checks before storing a record from anywhere (peer, client, mount), in the
/// order that makes the cheapest refusal come first.
public struct RecordValidator: Sendable {
    public let search: ChainSearch

    public init(root: PublicKey, limits: Limits = .default, cache: GrantVerificationCache = GrantVerificationCache()) {
        search = ChainSearch(root: root, limits: limits, cache: cache)
    }

    public var root: PublicKey { search.root }
    public var limits: Limits { search.limits }

    public func validate(_ record: Record, nowMs: UInt64, isRevoked: (Hash256) -> Bool) -> AuthorityVerdict {
        guard record.cluster == root else {
            return .refused(Refusal(.noAuthority, "record is for cluster \(record.cluster.fingerprint), this is \(root.fingerprint)"), revokedGrants: [])
        }
        guard record.value.count <= limits.maxValueBytes else {
            return .refused(Refusal(.tooLarge, "value is \(record.value.count) bytes, limit \(limits.maxValueBytes)"), revokedGrants: [])
        }
        guard record.pool.count <= limits.maxPoolGrants else {
            return .refused(Refusal(.tooLarge, "pool has \(record.pool.count) grants, limit \(limits.maxPoolGrants)"), revokedGrants: [])
        }
        if record.timestamp.isTooFarAhead(ofNowMs: nowMs, maxSkewMs: limits.maxSkewMs) {
            return .refused(Refusal(.clockSkew, "record time \(record.timestamp.rfc3339) is more than \(limits.maxSkewMs / 1000) s ahead of this node's clock"), revokedGrants: [])
        }
        guard record.signatureIsValid else {
            return .refused(Refusal(.badSignature, "signature of \(record.key) by \(record.signer.fingerprint) does not verify"), revokedGrants: [])
        }
        return recheck(record, isRevoked: isRevoked)
    }

    /// Authority alone, for a record already stored (after a revocation): no clock or size checks.
    public func recheck(_ record: Record, isRevoked: (Hash256) -> Bool) -> AuthorityVerdict {
        search.authorize(
            key: record.key, signer: record.signer, atMs: record.timestamp.physicalMs, pool: record.pool,
            isRevoked: isRevoked)
    }
}

/// What a newly learned revocation does to one stored record (Docs/contract.md §Revocation).
public enum RevocationOutcome: Sendable, Equatable {
    /// Still authorized; the pool lost the revoked grants (stored without them).
    case keep(Record)
    /// No valid chain is left: the key disappears from this node's tree.
    case unset
}

public enum RevocationCascade {
    /// Prunes revoked grants from the record's pool and re-checks its authority.
    public static func apply(to record: Record, validator: RecordValidator, isRevoked: (Hash256) -> Bool) -> RevocationOutcome {
        let pruned = record.pool.filter { !isRevoked($0.id) }
        let candidate = pruned.count == record.pool.count ? record : record.withPool(pruned)
        if case .authorized = validator.recheck(candidate, isRevoked: isRevoked) { return .keep(candidate) }
        return .unset
    }
}
