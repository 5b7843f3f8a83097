import KVGossipCore
import Synchronization

/// The open links by peer address and the dials in progress (one per address).
final class LinkTable: Sendable {
    private struct State {
        var links: [PeerAddress: PeerLink] = [:]
        /// Every established link, oldest first (several may lead to one peer for a while), with
        /// the peer's lineage for `LinkEviction`.
        var established: [(link: PeerLink, lineage: [Hash256], order: UInt64)] = []
        var nextOrder: UInt64 = 0
        var dialing: [PeerAddress: Task<PeerLink, any Error>] = [:]
        /// The name each linked node key went by, for `kvgossip log` (bounded: admitted peers only).
        var names: [PublicKey: String] = [:]
    }

    private let state = Mutex(State())

    /// The open link to `address`, or the result of `dial` (shared by concurrent callers).
    func link(to address: PeerAddress, dial: @escaping @Sendable () async throws -> PeerLink) async throws -> PeerLink {
        let task = state.withLock { s -> Task<PeerLink, any Error>? in
            if let link = s.links[address], !link.isClosed { return nil }
            if let running = s.dialing[address] { return running }
            let task = Task { try await dial() }
            s.dialing[address] = task
            return task
        }
        guard let task else { return state.withLock { $0.links[address]! } }
        defer { state.withLock { s in if s.dialing[address] == task { s.dialing[address] = nil } } }
        return try await task.value
    }

    /// The open link to `address`, if there is one (no dial).
    func openLink(to address: PeerAddress) -> PeerLink? {
        state.withLock { s in s.links[address].flatMap { $0.isClosed ? nil : $0 } }
    }

    /// What `add` did.
    enum Admitted {
        /// The link is recorded; `closing` were closed to make room (the peer's oldest past
        /// `perNode`, or the link `LinkEviction` chose when the table was full).
        case added(closing: [PeerLink])
        /// The table was full and the newcomer's own branch is the largest: it is the one closed.
        case refused
    }

    /// Records an established link under `address`, its peer standing at `lineage` under the root
    /// (`Admission.lineage`). A node key holds at most `perNode` links (a peer that keeps linking
    /// loses its oldest) and the node at most `total`: past that `LinkEviction` picks the link to
    /// close, which may be the newcomer.
    func add(_ link: PeerLink, as address: PeerAddress, lineage: [Hash256], perNode: Int, total: Int) -> Admitted {
        let admitted = state.withLock { s -> Admitted in
            s.established.removeAll { $0.link.isClosed }
            var close: [PeerLink] = []
            let sameNode = s.established.filter { $0.link.peer.nodeKey == link.peer.nodeKey }
            if sameNode.count >= perNode { close = sameNode.prefix(sameNode.count - perNode + 1).map(\.link) }
            s.established.removeAll { entry in close.contains { $0 === entry.link } }
            let order = s.nextOrder
            s.nextOrder += 1
            if s.established.count >= total {
                let holders = (s.established + [(link, lineage, order)]).map { LinkEviction.Holder(id: ObjectIdentifier($0.link), lineage: $0.lineage, order: $0.order) }
                let victim = LinkEviction.victim(among: holders)
                if victim == ObjectIdentifier(link) { return .refused }
                let index = s.established.firstIndex { ObjectIdentifier($0.link) == victim }!
                close.append(s.established.remove(at: index).link)
            }
            s.established.append((link, lineage, order))
            s.links[address] = link
            if s.names.count < LinkTable.maxNames || s.names[link.peer.nodeKey] != nil { s.names[link.peer.nodeKey] = link.peer.name }
            return .added(closing: close)
        }
        switch admitted {
        case .added(let closing): for old in closing { old.disconnectNow() }
        case .refused: link.disconnectNow()
        }
        return admitted
    }

    static let maxNames = 4_096

    /// Node keys of the peers linked since start, with their names.
    var names: [PublicKey: String] { state.withLock { $0.names } }

    func remove(_ address: PeerAddress) {
        state.withLock { s in
            if s.links[address]?.isClosed ?? false { s.links[address] = nil }
        }
    }

    var count: Int { state.withLock { $0.links.values.filter { !$0.isClosed }.count } }

    /// The open links.
    var open: [PeerLink] { state.withLock { $0.links.values.filter { !$0.isClosed } } }
}
