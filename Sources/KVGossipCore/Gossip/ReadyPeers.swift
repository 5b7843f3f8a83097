/// Peers that may have a push to send, in the order they became ready. The push pump takes them
/// from the front and puts a peer that still has keys and room at the back, so peers are served
/// in turn and no event sorts or scans every peer (a fleet node has thousands). An entry is a
/// hint: the pump checks the peer's queue and pushes in flight when it reaches it.
struct ReadyPeers: Sendable {
    private var order: [PeerAddress] = []
    private var head = 0
    private var members: Set<PeerAddress> = []

    var count: Int { members.count }

    mutating func append(_ address: PeerAddress) {
        if members.insert(address).inserted { order.append(address) }
    }

    mutating func popFirst() -> PeerAddress? {
        guard head < order.count else { return nil }
        let address = order[head]
        head += 1
        members.remove(address)
        // Drop the consumed front now and then, so the array stays proportional to its members.
        if head >= 64, head * 2 >= order.count {
            order.removeFirst(head)
            head = 0
        }
        return address
    }

    mutating func removeAll(where gone: (PeerAddress) -> Bool) {
        order = order[head...].filter { !gone($0) }
        head = 0
        members = Set(order)
    }
}
