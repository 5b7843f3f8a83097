/// Which established link gives way when a node already holds its maximum of links.
///
/// Refusing the newcomer would let whoever fills the table first keep every other peer out: a key
/// holding one delegating grant can mint membership for a hundred keys and open links with each.
/// So a full table closes a link instead, chosen by the authority behind it. Each link's peer has a
/// lineage: the grants of the chain that admits it, from the root down, then its node key. The
/// victim is found by walking that tree from the root: at each level, into the branch holding the
/// most links (ties to the branch whose oldest link is oldest), until one node key is left, whose
/// oldest link goes. Whatever one grant's holder mints stays under that grant's branch, so it can
/// crowd out only itself and the links below the same grant; a peer with a grant of its own from
/// the root keeps its link however many links a delegate opens.
///
/// Branches alone are not enough where the hosts themselves share one branch (all granted through
/// one operator's delegation): while theirs is the largest, a sibling delegate's keys would crowd
/// them out down to half the table. So links that are proven, dialed by this node or from a key
/// that answered its dial at some address, give way only when no unproven link is left. A key
/// minted to fill the table is never dialed, so it can push out only other unproven links.
public enum LinkEviction {
    /// One link as the rule sees it: its lineage (root-side first, the node key last, so never
    /// empty) and when it was added (smaller is older).
    public struct Holder<ID: Hashable>: Sendable where ID: Sendable {
        public let id: ID
        public let lineage: [Hash256]
        public let order: UInt64
        /// Dialed by this node, or from a key that answered its dial.
        public let proven: Bool

        public init(id: ID, lineage: [Hash256], order: UInt64, proven: Bool = false) {
            precondition(!lineage.isEmpty, "a lineage ends with the node key")
            self.id = id
            self.lineage = lineage
            self.order = order
            self.proven = proven
        }
    }

    /// The link to close so one more fits, among `holders` (the newcomer included: when its own
    /// branch is the largest, or it is the only unproven one, it may be the one). Nil only for no
    /// holders.
    public static func victim<ID>(among holders: [Holder<ID>]) -> ID? {
        let unproven = holders.filter { !$0.proven }
        var branch = unproven.isEmpty ? holders : unproven
        var depth = 0
        while let first = branch.first {
            // Every holder left has one lineage (one node key by one chain): its oldest goes.
            if branch.allSatisfy({ $0.lineage == first.lineage }) { return branch.min { $0.order < $1.order }!.id }
            // Lineages that agree up to `depth` and differ somewhere: split at `depth` (nil for one
            // that ended, which cannot happen while a node key ends each, but must not loop).
            var children: [Hash256?: [Holder<ID>]] = [:]
            for holder in branch { children[depth < holder.lineage.count ? holder.lineage[depth] : nil, default: []].append(holder) }
            branch = children.values.max { a, b in
                if a.count != b.count { return a.count < b.count }
                return a.map(\.order).min()! > b.map(\.order).min()!
            }!
            depth += 1
        }
        return nil
    }
}
