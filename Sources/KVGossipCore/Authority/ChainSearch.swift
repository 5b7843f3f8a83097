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
    ///
    /// Cheapest work first, so a pool of junk costs little: the cheap fields (cluster, validity
    /// window, revocation) filter the pool; then only grants that lie on some path from the root to
    /// the signer (found from issuer and issuee alone) are considered; their signatures are checked
    /// (once per grant id, cached) as the breadth-first search reaches them; and a grant's patterns,
    /// the costliest check, are matched against the key last, only for grants whose signature holds.
    func chain(
        for key: Key, signer: PublicKey, atMs ms: UInt64, pool: [Grant], isRevoked: (Hash256) -> Bool,
        strictness: Strictness = Strictness()
    ) -> [Grant]? {
        if signer == root { return [] }
        var usable: [Grant] = []
        var seen = Set<Hash256>()
        for g in pool where seen.insert(g.id).inserted {
            guard g.cluster == root else { continue }
            if strictness.checkValidity && !g.isValid(atMs: ms) { continue }
            if strictness.checkRevocation && isRevoked(g.id) { continue }
            usable.append(g)
        }
        let onPath = Self.onSomePath(usable, from: root, to: signer, maxLength: limits.maxChainLength)
        return breadthFirst(usable, onPath: onPath, to: signer) { g in cache.signatureIsValid(g) && cache.matches(g, key) }
    }

    /// A chain of delegating grants from the root to `holder`, valid at `ms`, or nil: what lets
    /// `holder` issue (and so revoke) grants. Revocation is not consulted, so every node reaches
    /// the same verdict about an object whatever it has learned so far (Docs/contract.md §Revocation).
    public func delegation(to holder: PublicKey, atMs ms: UInt64, pool: [Grant]) -> [Grant]? {
        if holder == root { return [] }
        var usable: [Grant] = []
        var seen = Set<Hash256>()
        for g in pool where seen.insert(g.id).inserted && g.cluster == root && g.mayDelegate && g.isValid(atMs: ms) {
            usable.append(g)
        }
        let onPath = Self.onSomePath(usable, from: root, to: holder, maxLength: limits.maxChainLength)
        return breadthFirst(usable, onPath: onPath, to: holder) { cache.signatureIsValid($0) }
    }

    /// A chain of grants from the root to `holder` with any patterns (intermediate links
    /// delegating), in force at `ms` (any time when nil) and not revoked: what admits a node key as
    /// a peer (`Admission`).
    public func membership(of holder: PublicKey, atMs ms: UInt64?, pool: [Grant], isRevoked: (Hash256) -> Bool) -> [Grant]? {
        if holder == root { return [] }
        var usable: [Grant] = []
        var seen = Set<Hash256>()
        for g in pool where seen.insert(g.id).inserted && g.cluster == root && !isRevoked(g.id) {
            if let ms, !g.isValid(atMs: ms) { continue }
            usable.append(g)
        }
        let onPath = Self.onSomePath(usable, from: root, to: holder, maxLength: limits.maxChainLength)
        return breadthFirst(usable, onPath: onPath, to: holder) { cache.signatureIsValid($0) }
    }

    /// What a node presents to be admitted (`LinkIdentity.credential`): every chain it holds from
    /// the root, up to `maxGrants` grants in all, chains ending in a membership grant (no pattern)
    /// first. Several chains, because a node cannot know which of its grants a peer has seen
    /// revoked: when its write grant is revoked, its membership grant still admits it, and it can
    /// learn the revocation. Empty for the root; nil when it holds no chain.
    public func credential(of holder: PublicKey, atMs ms: UInt64, pool: [Grant], isRevoked: (Hash256) -> Bool, maxGrants: Int) -> [Grant]? {
        if holder == root { return [] }
        var chosen: [Grant] = []
        var chosenIDs = Set<Hash256>()
        var candidates = pool
        let passes: [(Grant) -> Bool] = [{ $0.issuee != holder || $0.patternTexts.isEmpty }, { _ in true }]
        for admits in passes {
            while let chain = membership(of: holder, atMs: ms, pool: candidates.filter(admits), isRevoked: isRevoked) {
                let new = chain.filter { !chosenIDs.contains($0.id) }
                guard chosen.count + new.count <= maxGrants, let last = chain.last else { break }
                chosen += new
                chosenIDs.formUnion(new.map(\.id))
                candidates.removeAll { $0.id == last.id }
            }
        }
        return chosen.isEmpty ? nil : chosen
    }

    /// Shortest path of grants from the root to `target`, through grants in `onPath` that
    /// `accepts`; intermediate links must allow delegation.
    private func breadthFirst(_ usable: [Grant], onPath: [Bool], to target: PublicKey, accepts: (Grant) -> Bool) -> [Grant]? {
        var issuedBy: [PublicKey: [Int]] = [:]
        for (i, g) in usable.enumerated() where onPath[i] { issuedBy[g.issuer, default: []].append(i) }
        // parent[i] is the index of the link before grant i; -1 marks a link issued by the root;
        // -2 not reached; -3 reached but refused by `accepts`.
        var parent = [Int](repeating: -2, count: usable.count)
        var frontier: [Int] = []
        for i in issuedBy[root] ?? [] {
            parent[i] = accepts(usable[i]) ? -1 : -3
            if parent[i] == -1 { frontier.append(i) }
        }
        var depth = 1
        while !frontier.isEmpty && depth <= limits.maxChainLength {
            var next: [Int] = []
            for i in frontier {
                let g = usable[i]
                if g.issuee == target { return Self.path(to: i, parent: parent, usable: usable) }
                guard g.mayDelegate, depth < limits.maxChainLength else { continue }
                for j in issuedBy[g.issuee] ?? [] where parent[j] == -2 {
                    guard accepts(usable[j]) else {
                        parent[j] = -3
                        continue
                    }
                    parent[j] = i
                    next.append(j)
                }
            }
            frontier = next
            depth += 1
        }
        return nil
    }

    /// Which grants lie on some path of at most `maxLength` links from `source` to `target`, by
    /// issuer and issuee alone (no signature, no pattern): a grant claiming to come from nowhere
    /// the root reaches, or to lead nowhere near the signer, is never examined further.
    static func onSomePath(_ grants: [Grant], from source: PublicKey, to target: PublicKey, maxLength: Int) -> [Bool] {
        // Keys that may issue the next link: the source, and keys it (transitively) gave a
        // delegating grant, with the fewest links that lead to them.
        var issuers: [PublicKey: Int] = [source: 0]
        var frontier: Set<PublicKey> = [source]
        for depth in 1..<max(1, maxLength) where !frontier.isEmpty {
            var next: Set<PublicKey> = []
            for g in grants where g.mayDelegate && frontier.contains(g.issuer) && issuers[g.issuee] == nil {
                issuers[g.issuee] = depth
                next.insert(g.issuee)
            }
            frontier = next
        }
        // Keys from which the target is reached, with the fewest links: the last link may be any
        // grant, the ones before it must allow delegation.
        var toTarget: [PublicKey: Int] = [target: 0]
        frontier = [target]
        for depth in 1..<max(1, maxLength) where !frontier.isEmpty {
            var next: Set<PublicKey> = []
            for g in grants where (depth == 1 || g.mayDelegate) && frontier.contains(g.issuee) && toTarget[g.issuer] == nil {
                toTarget[g.issuer] = depth
                next.insert(g.issuer)
            }
            frontier = next
        }
        return grants.map { g in
            guard let before = issuers[g.issuer], let after = toTarget[g.issuee] else { return false }
            return before + 1 + after <= maxLength && (after == 0 || g.mayDelegate)
        }
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
