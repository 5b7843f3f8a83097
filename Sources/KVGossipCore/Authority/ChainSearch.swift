/// Finds a chain of grants from the root to a signer that covers one key (Docs/contract.md §Authority).
///
/// Breadth-first over the pool's usable grants with a visited set, so the search is bounded by the
/// pool size and finds a shortest chain; depth is capped by `Limits.maxChainLength`.
public struct ChainSearch: Sendable {
    public let root: PublicKey
    public let limits: Limits
    public let cache: GrantVerificationCache

    public init(root: PublicKey, limits: Limits = .default, cache: GrantVerificationCache) {
        self.root = root
        self.limits = limits
        self.cache = cache
    }

    /// Which link conditions to enforce. Relaxed passes only explain a refusal; they never authorize.
    struct Strictness {
        var checkRevocation = true
        var checkValidity = true
    }

    /// The chain (root first, signer's grant last; empty when the root signs), or nil.
    func chain(
        for key: Key, signer: PublicKey, atMs ms: UInt64, pool: [Grant], isRevoked: (Hash256) -> Bool,
        strictness: Strictness = Strictness()
    ) -> [Grant]? {
        if signer == root { return [] }
        var usable: [Grant] = []
        var seen = Set<Hash256>()
        for g in pool where seen.insert(g.id).inserted {
            guard g.cluster == root, g.matches(key) else { continue }
            if strictness.checkValidity && !g.isValid(atMs: ms) { continue }
            if strictness.checkRevocation && isRevoked(g.id) { continue }
            guard cache.signatureIsValid(g) else { continue }
            usable.append(g)
        }
        var issuedBy: [PublicKey: [Int]] = [:]
        for (i, g) in usable.enumerated() { issuedBy[g.issuer, default: []].append(i) }

        // parent[i] is the index of the link before grant i; -1 marks a link issued by the root.
        var parent = [Int](repeating: -2, count: usable.count)
        var frontier = issuedBy[root] ?? []
        for i in frontier { parent[i] = -1 }
        var depth = 1
        while !frontier.isEmpty && depth <= limits.maxChainLength {
            var next: [Int] = []
            for i in frontier {
                let g = usable[i]
                if g.issuee == signer { return Self.path(to: i, parent: parent, usable: usable) }
                guard g.mayDelegate, depth < limits.maxChainLength else { continue }
                for j in issuedBy[g.issuee] ?? [] where parent[j] == -2 {
                    parent[j] = i
                    next.append(j)
                }
            }
            frontier = next
            depth += 1
        }
        return nil
    }

    private static func path(to last: Int, parent: [Int], usable: [Grant]) -> [Grant] {
        var chain: [Grant] = []
        var i = last
        while i >= 0 {
            chain.append(usable[i])
            i = parent[i]
        }
        return chain.reversed()
    }

    /// Authorizes `signer` to write `key` at time `ms`, or explains why not: `revoked` (with the
    /// revoked grant ids, so the answer can carry them), `expired`, or `no-authority`.
    public func authorize(
        key: Key, signer: PublicKey, atMs ms: UInt64, pool: [Grant], isRevoked: (Hash256) -> Bool
    ) -> AuthorityVerdict {
        if let chain = chain(for: key, signer: signer, atMs: ms, pool: pool, isRevoked: isRevoked) {
            return .authorized(chain: chain)
        }
        if let chain = chain(
            for: key, signer: signer, atMs: ms, pool: pool, isRevoked: isRevoked,
            strictness: Strictness(checkRevocation: false))
        {
            let revoked = chain.map(\.id).filter(isRevoked)
            return .refused(
                Refusal(.revoked, "the chain for \(key) through grant \(revoked.first.map { $0.hex.prefix(16) } ?? "?") is revoked"),
                revokedGrants: revoked)
        }
        if chain(
            for: key, signer: signer, atMs: ms, pool: pool, isRevoked: isRevoked,
            strictness: Strictness(checkRevocation: false, checkValidity: false)) != nil
        {
            return .refused(Refusal(.expired, "a grant in the chain for \(key) is expired or not yet valid at \(RFC3339.format(ms: ms))"), revokedGrants: [])
        }
        return .refused(
            Refusal(.noAuthority, "no chain of grants from the root gives \(signer.fingerprint) the key \(key)"),
            revokedGrants: [])
    }
}

public enum AuthorityVerdict: Sendable, Equatable {
    case authorized(chain: [Grant])
    case refused(Refusal, revokedGrants: [Hash256])

    public var chain: [Grant]? {
        if case .authorized(let chain) = self { return chain }
        return nil
    }
}
