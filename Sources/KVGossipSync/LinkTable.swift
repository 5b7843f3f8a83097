import KVGossipCore
import Synchronization

/// The open links by peer address, the dials in progress (one per address), and the connections
/// still in their handshake, counted per source so one address cannot take every slot.
final class LinkTable: Sendable {
    private struct State {
        var links: [PeerAddress: PeerLink] = [:]
        /// Every established link, oldest first (several may lead to one peer for a while).
        var established: [PeerLink] = []
        var dialing: [PeerAddress: Task<PeerLink, any Error>] = [:]
        var handshakes: HandshakeSlots<UInt64>
        /// How to close each connection holding a handshake slot (to make room for a newcomer).
        var closers: [UInt64: @Sendable () -> Void] = [:]
        var nextConnection: UInt64 = 0
    }

    private let state: Mutex<State>

    init(pendingPerSource: Int, pendingTotal: Int) {
        state = Mutex(State(handshakes: HandshakeSlots(perSource: pendingPerSource, total: pendingTotal)))
    }

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
            return (true, close)
        }
        for old in close { old.disconnectNow() }
        return accepted
    }

    func remove(_ address: PeerAddress) {
        state.withLock { s in
            if s.links[address]?.isClosed ?? false { s.links[address] = nil }
        }
    }

    var count: Int { state.withLock { $0.links.values.filter { !$0.isClosed }.count } }

    /// The open links.
    var open: [PeerLink] { state.withLock { $0.links.values.filter { !$0.isClosed } } }

    /// Takes a handshake slot for a connection from `host` (`HandshakeSlots`): nil when that source
    /// already holds its share, else the connection's number for `releasePending`. When every slot is
    /// taken, the oldest connection of the biggest holder is closed to make room.
    func reservePending(_ host: String, close: @escaping @Sendable () -> Void) -> UInt64? {
        let (number, evict) = state.withLock { s -> (UInt64?, (@Sendable () -> Void)?) in
            let number = s.nextConnection
            s.nextConnection += 1
            switch s.handshakes.reserve(number, source: host) {
            case .refused:
                return (nil, nil)
            case .admitted(let victim):
                s.closers[number] = close
                return (number, victim.flatMap { s.closers.removeValue(forKey: $0) })
            }
        }
        evict?()
        return number
    }

    /// The connection sent a well-formed hello: it keeps its slot longer than silent ones.
    func vouchPending(_ number: UInt64) {
        state.withLock { $0.handshakes.vouch(number) }
    }

    func releasePending(_ number: UInt64) {
        state.withLock { s in
            s.handshakes.release(number)
            s.closers[number] = nil
        }
    }
}
