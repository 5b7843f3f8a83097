/// A peer as the gossip knows it.
public struct GossipPeer: Sendable, Equatable {
    public var address: PeerAddress
    /// From Serf or the link's handshake; the address until known.
    public var name: String
    /// Configured (`--peer`): stays when Serf forgets it.
    public var isStatic: Bool
    public var lastSyncMs: UInt64?
    public var agreed: Bool?
    public var lastError: String?
    var sessionInFlight = false
    /// The running session was started by an announcement (they are limited in number).
    var sessionAnnounced = false
    var sessionWanted: String?
    var repairAtMs: UInt64?
    /// Pushes and sessions that failed since the peer last answered: while above zero the peer
    /// gets no pushes, and each further failure doubles the wait for its repair.
    var failuresInARow = 0
    /// A push failed while a session was running: that session may not carry the push's keys, so
    /// its end does not cancel the repair.
    var failedDuringSession = false
    var pushesInFlight = 0
    var queue: [Key] = []
    var queued: Set<Key> = []
    /// Pending pushes when the running session started: a completed session settles them.
    var pendingAtSessionStart: [Key: Hash256] = [:]
}

extension GossipPeer {
    /// Nothing in flight, queued, wanted or remembered: the same as a peer never dealt with.
    var isIdle: Bool {
        lastSyncMs == nil && agreed == nil && lastError == nil && !sessionInFlight && !sessionAnnounced && sessionWanted == nil
            && repairAtMs == nil && failuresInARow == 0 && pushesInFlight == 0 && queue.isEmpty && pendingAtSessionStart.isEmpty
    }
}

/// Who a node's peers are: their sync addresses in order, their names, which are static
/// (`--peer`). Built once per membership change; its storage is shared by every copy, so one
/// table can serve many simulated nodes.
public struct PeerTable: Sendable, Equatable {
    public private(set) var addresses: [PeerAddress] = []
    /// From Serf (members) or the address itself (statics).
    public private(set) var names: [PeerAddress: String] = [:]
    public private(set) var statics: Set<PeerAddress> = []
    /// The members (Serf's, statics among them) ordered by Serf name, then address: the ring
    /// along which each node pushes a record to the next one and tells the next two its new tree
    /// hash (`GossipConfig.forwardsAlongRing`, `announceFanout`). Every node that sees the same
    /// members sees the same ring, so every node has predecessors that reach it. A static peer
    /// that Serf does not list has no name every node agrees on, so it is not on the ring.
    public private(set) var ring: [PeerAddress] = []
    /// The Serf name of each entry of `ring`, in the same order.
    public private(set) var ringNames: [String] = []

    public init() {}

    /// Statics first: a member at a static peer's address stays static.
    public init(members: [(name: String, address: PeerAddress)], statics: [PeerAddress]) {
        var serfNames: [PeerAddress: String] = [:]
        for member in members where serfNames[member.address] == nil { serfNames[member.address] = member.name }
        for address in statics { names[address] = address.description }
        self.statics = Set(statics)
        names.merge(serfNames) { staticName, _ in staticName }
        addresses = names.keys.sorted()
        let entries = serfNames.map { (name: $0.value, address: $0.key) }.sorted { ($0.name, $0.address) < ($1.name, $1.address) }
        ring = entries.map(\.address)
        ringNames = entries.map(\.name)
    }

    /// The index in `ring` of the first entry after a node of this name (and address, if known),
    /// wrapping to 0 past the end.
    func ringIndex(after name: String, address: PeerAddress?) -> Int {
        var (low, high) = (0, ring.count)
        while low < high {
            let mid = (low + high) / 2
            let entry = ring[mid], entryName = ringNames[mid]
            let entryIsAfter = entryName > name || (entryName == name && address.map { entry > $0 } ?? true)
            if entryIsAfter { high = mid } else { low = mid + 1 }
        }
        return low == ring.count ? 0 : low
    }
}
