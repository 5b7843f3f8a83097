import KVGossipCore
import Synchronization

/// The open links by peer address, the dials in progress (one per address), and the connections
/// still in their handshake, counted per source so one address cannot take every slot.
final class LinkTable: Sendable {
    private struct State {
        var links: [PeerAddress: PeerLink] = [:]
        var dialing: [PeerAddress: Task<PeerLink, any Error>] = [:]
        var pending: [String: Int] = [:]
        var pendingTotal = 0
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

    func add(_ link: PeerLink, as address: PeerAddress) {
        state.withLock { $0.links[address] = link }
    }

    func remove(_ address: PeerAddress) {
        state.withLock { s in
            if s.links[address]?.isClosed ?? false { s.links[address] = nil }
        }
    }

    var count: Int { state.withLock { $0.links.values.filter { !$0.isClosed }.count } }

    /// The open links.
    var open: [PeerLink] { state.withLock { $0.links.values.filter { !$0.isClosed } } }

    /// Takes a handshake slot for a connection from `host`, or refuses when that source or everyone
    /// together already holds too many.
    func reservePending(_ host: String, perSource: Int, total: Int) -> Bool {
        state.withLock { s in
            guard s.pendingTotal < total, s.pending[host, default: 0] < perSource else { return false }
            s.pendingTotal += 1
            s.pending[host, default: 0] += 1
            return true
        }
    }

    func releasePending(_ host: String) {
        state.withLock { s in
            s.pendingTotal -= 1
            s.pending[host, default: 1] -= 1
            if s.pending[host] == 0 { s.pending[host] = nil }
        }
    }
}
