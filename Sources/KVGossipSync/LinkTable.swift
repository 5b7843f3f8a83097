import KVGossipCore
import Synchronization

/// The open links by peer address and the dials in progress (one per address).
final class LinkTable: Sendable {
    private struct State {
        var links: [PeerAddress: PeerLink] = [:]
        /// Every established link, oldest first (several may lead to one peer for a while).
        var established: [PeerLink] = []
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

    /// Records an established link under `address`. A node key holds at most `perNode` links (a
    /// peer that keeps linking loses its oldest) and the node at most `total`: past that the new link
    /// is closed and false returned.
    @discardableResult
    func add(_ link: PeerLink, as address: PeerAddress, perNode: Int, total: Int) -> Bool {
        let (accepted, close) = state.withLock { s -> (Bool, [PeerLink]) in
            s.established = s.established.filter { !$0.isClosed }
            var close: [PeerLink] = []
            guard s.established.count < total else { return (false, [link]) }
            let sameNode = s.established.filter { $0.peer.nodeKey == link.peer.nodeKey }
            if sameNode.count >= perNode { close = Array(sameNode.prefix(sameNode.count - perNode + 1)) }
            s.established.append(link)
            s.links[address] = link
            if s.names.count < LinkTable.maxNames || s.names[link.peer.nodeKey] != nil { s.names[link.peer.nodeKey] = link.peer.name }
            return (true, close)
        }
        for old in close { old.disconnectNow() }
        return accepted
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
