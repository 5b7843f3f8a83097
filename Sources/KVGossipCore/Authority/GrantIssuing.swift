/// The issue-time rule (Docs/contract.md §Authority): an entity may only grant what lies inside its own
/// grants, and only when those grants let it delegate. (Verification intersects patterns along the
/// chain anyway; this check stops an over-wide grant from being minted by mistake.)
public enum GrantIssuing {
    /// Returns the proof grants to ship with the new grant (every delegating chain from the root to
    /// the issuer; empty when the root issues), or refuses with the offending pattern named.
    public static func proofChain(
        root: PublicKey, issuer: PublicKey, patterns: [Pattern], proofs: [Grant], nowMs: UInt64,
        cache: GrantVerificationCache
    ) throws(Refusal) -> [Grant] {
        if issuer == root { return [] }
        var usable: [Grant] = []
        var seen = Set<Hash256>()
        for g in proofs where seen.insert(g.id).inserted {
            if g.cluster == root, g.isValid(atMs: nowMs), cache.signatureIsValid(g) { usable.append(g) }
        }
        let delegating = chains(from: root, to: issuer, through: usable, requireDelegation: true)
        if delegating.isEmpty {
            if !chains(from: root, to: issuer, through: usable, requireDelegation: false).isEmpty {
                throw Refusal(.noAuthority, "the issuer's grants do not allow delegation (they were issued without --delegate)")
            }
            throw Refusal(.noAuthority, "no valid chain of grants from the root to the issuer \(issuer.text) among the --proof grants")
        }
        let own = delegating.map { $0.last! }
        let union = own.flatMap(\.patterns)
        for p in patterns {
            guard let included = p.isIncluded(in: union, maxStates: 100_000) else {
                throw Refusal(.noAuthority, "pattern \(p) is too intricate to check against the issuer's grants; simplify it")
            }
            if included { continue }
            let example = p.counterexample(notIn: union).map { " (for example \($0))" } ?? ""
            throw Refusal(.noAuthority, "pattern \(p) reaches keys outside the issuer's grants \(union.map(\.text))\(example)")
        }
        var proof: [Grant] = []
        var added = Set<Hash256>()
        for chain in delegating {
            for g in chain where added.insert(g.id).inserted { proof.append(g) }
        }
        return proof
    }

    /// Every simple chain root → … → target (bounded by the proof set's size: each grant is used
    /// at most once per chain). Links before the target must delegate; with `requireDelegation`
    /// the target's own grant must too.
    static func chains(from root: PublicKey, to target: PublicKey, through grants: [Grant], requireDelegation: Bool) -> [[Grant]] {
        var found: [[Grant]] = []
        func walk(_ holder: PublicKey, _ path: [Grant]) {
            // The new grant will be one more link, so the issuer's own chain must leave room for it.
            guard path.count < Limits.default.maxChainLength - 1 else { return }
            for g in grants where g.issuer == holder && !path.contains(g) {
                if g.issuee == target {
                    if !requireDelegation || g.mayDelegate { found.append(path + [g]) }
                } else if g.mayDelegate {
                    walk(g.issuee, path + [g])
                }
            }
        }
        walk(root, [])
        return found
    }
}
