/// The rules of the `kvgossip-hash` Serf query (Docs/contract.md §Serf), apart from Serf: whether
/// to answer a query, and whom an answer to our own start-up query tells us to reconcile with. The
/// Serf shell carries out what these return and decides nothing.
public enum TreeHashQuery {
    /// What to do with a query that reached this node.
    public enum Reply: Equatable, Sendable {
        /// Answer with these bytes (our announcement).
        case answer([UInt8])
        /// Say nothing; why, for a debug log.
        case stayQuiet(String)
    }

    /// A node answers only a well-formed query from another node of its cluster whose tree differs
    /// from its own, so the querier learns exactly whom to sync with.
    public static func reply(toQuery payload: [UInt8], mine: TreeHashAnnouncement) -> Reply {
        let asked: TreeHashAnnouncement
        do { asked = try TreeHashAnnouncement(decoding: payload) } catch { return .stayQuiet("malformed: \(error)") }
        if asked.nodeName == mine.nodeName { return .stayQuiet("our own query") }
        if asked.cluster != mine.cluster { return .stayQuiet("another cluster") }
        if asked.treeHash == mine.treeHash { return .stayQuiet("same tree") }
        return .answer(mine.encoded)
    }

    /// Where to reconcile after `sender` answered our start-up query with `payload`: the host Serf
    /// knows for that member, at the sync port its answer names. Nil for an answer from ourselves,
    /// from another cluster, with the same tree as ours, malformed, or from a name that is not a
    /// member (Serf names who answered; the address comes from membership, never from the answer).
    public static func reconcileTarget(answer payload: [UInt8], from sender: String, memberHost: String?, mine: TreeHashAnnouncement) -> PeerAddress? {
        guard sender != mine.nodeName, let memberHost, !memberHost.isEmpty,
            let answer = try? TreeHashAnnouncement(decoding: payload),
            answer.cluster == mine.cluster, answer.treeHash != mine.treeHash, answer.syncPort != 0
        else { return nil }
        return PeerAddress(host: memberHost, port: Int(answer.syncPort))
    }
}
