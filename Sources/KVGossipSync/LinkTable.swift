import KVGossipCore
import Synchronization

/// The open links by peer address and the dials in progress (one per address).
final class LinkTable: Sendable {
    private struct State {
        var links: [PeerAddress: PeerLink] = [:]
        /// Every established link, oldest first (several may lead to one peer for a while), with
        /// the peer's lineage for `LinkEviction`.
        var established: [(link: PeerLink, lineage: [Hash256], order: UInt64, dialed: Bool)] = []
        var nextOrder: UInt64 = 0
        var dialing: [PeerAddress: Task<PeerLink, any Error>] = [:]
        /// The node key that answered this node's last dial of each address. An inbound link
        /// names the address it serves at (its IP and the sync port it announces), which anyone
        /// on that IP could claim: it is filed under that address only when the key matches.
        var owners: [PeerAddress: PublicKey] = [:]
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
        /// `perNode`, or the link `LinkEviction` chose when the table was full). `filed`: sessions
        /// to its address may use it (dialed, or inbound from the key that answered there).
        case added(closing: [PeerLink], filed: Bool)
        /// The table was full and the newcomer's own branch is the largest: it is the one closed.
        case refused
    }

    /// Records an established link, its peer standing at `lineage` under the root
    /// (`Admission.lineage`). A link this node `dialed` serves that address from now on, and its
    /// key becomes the address's owner; an inbound link serves the address it claims only when
    /// its key is that owner, so a host sharing a peer's IP cannot take the peer's sessions by
    /// announcing its port. A node key holds at most `perNode` links (a peer that keeps linking
    /// loses its oldest) and the node at most `total`: past that `LinkEviction` picks the link to
    /// close, which may be the newcomer.
    func add(_ link: PeerLink, dialed: PeerAddress?, lineage: [Hash256], perNode: Int, total: Int) -> Admitted {
        let admitted = state.withLock { s -> Admitted in
            s.established.removeAll { $0.link.isClosed }
            var close: [PeerLink] = []
            let sameNode = s.established.filter { $0.link.peer.nodeKey == link.peer.nodeKey }
            if sameNode.count >= perNode { close = sameNode.prefix(sameNode.count - perNode + 1).map(\.link) }
            s.established.removeAll { entry in close.contains { $0 === entry.link } }
            let order = s.nextOrder
            s.nextOrder += 1
            if s.established.count >= total {
                // Proven: dialed here, or the key answered a dial here at some address.
                let owners = Set(s.owners.values)
                let holders = (s.established + [(link, lineage, order, dialed != nil)]).map {
                    LinkEviction.Holder(
                        id: ObjectIdentifier($0.link), lineage: $0.lineage, order: $0.order, proven: $0.dialed || owners.contains($0.link.peer.nodeKey))
                }
                let victim = LinkEviction.victim(among: holders)
                if victim == ObjectIdentifier(link) { return .refused }
                let index = s.established.firstIndex { ObjectIdentifier($0.link) == victim }!
                close.append(s.established.remove(at: index).link)
            }
            s.established.append((link, lineage, order, dialed != nil))
            var filed = true
            if let dialed {
                s.links[dialed] = link
                s.owners[dialed] = link.peer.nodeKey
            } else if s.owners[link.address] == link.peer.nodeKey {
                s.links[link.address] = link
            } else {
                filed = false
            }
            if s.names.count < LinkTable.maxNames || s.names[link.peer.nodeKey] != nil { s.names[link.peer.nodeKey] = link.peer.name }
            return .added(closing: close, filed: filed)
        }
        switch admitted {
        case .added(let closing, _): for old in closing { old.disconnectNow() }
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

    /// The open links, filed under an address or not.
    var open: [PeerLink] { state.withLock { $0.established.map(\.link).filter { !$0.isClosed } } }
}
