/// Who may hold one of the few connection slots of links still in their handshake.
///
/// A connection costs the responder a slot from its first byte until its handshake ends (or its
/// deadline passes), and nothing about it is known yet but its source address. Refusing newcomers
/// when the slots are full would let anyone who opens enough slow connections lock every peer out
/// for as long as they like. So a full table makes room instead: the newcomer takes the slot of the
/// oldest connection of the source holding the most. A source is capped on its own, so one address
/// never takes more than `perSource`; many addresses together can only keep a slot as long as they
/// open new connections faster than a real handshake completes (milliseconds). A connection that has
/// sent a well-formed hello (`vouch`) gives up its slot only after every silent or slow one has: a
/// trickle of bytes never pushes out a peer that is talking.
public struct HandshakeSlots<Connection: Hashable & Sendable>: Sendable {
    public enum Decision: Equatable, Sendable {
        /// The connection holds a slot; close `evicting` (if any) to make the room.
        case admitted(evicting: Connection?)
        /// Its source already holds `perSource` slots: close the newcomer.
        case refused
    }

    public let perSource: Int
    public let total: Int
    private var holders: [Connection: (source: String, order: UInt64, vouched: Bool)] = [:]
    private var bySource: [String: [Connection]] = [:]
    private var nextOrder: UInt64 = 0

    public init(perSource: Int, total: Int) {
        precondition(perSource >= 1 && total >= 1, "slots: at least one per source and one in all")
        self.perSource = perSource
        self.total = total
    }

    /// How many slots are held.
    public var count: Int { holders.count }

    /// Asks a slot for `connection`, which came from `source`.
    public mutating func reserve(_ connection: Connection, source: String) -> Decision {
        guard holders[connection] == nil else { return .admitted(evicting: nil) }
        guard bySource[source, default: []].count < perSource else { return .refused }
        var evicted: Connection?
        if holders.count >= total {
            evicted = victim(vouched: false) ?? victim(vouched: true)
            release(evicted!)
        }
        holders[connection] = (source, nextOrder, false)
        nextOrder += 1
        bySource[source, default: []].append(connection)
        return .admitted(evicting: evicted)
    }

    /// The connection sent a well-formed hello: it is evicted only after the silent ones.
    public mutating func vouch(_ connection: Connection) {
        holders[connection]?.vouched = true
    }

    /// The oldest connection of the source holding the most slots, among the vouched or the others;
    /// ties go to the source whose oldest is oldest, so the choice does not depend on dictionary order.
    private func victim(vouched: Bool) -> Connection? {
        var best: (count: Int, oldest: Connection, order: UInt64)?
        for (_, connections) in bySource {
            let eligible = connections.filter { holders[$0]!.vouched == vouched }
            guard let first = eligible.first else { continue }
            let order = holders[first]!.order
            if best == nil || eligible.count > best!.count || (eligible.count == best!.count && order < best!.order) {
                best = (eligible.count, first, order)
            }
        }
        return best?.oldest
    }

    /// Gives the slot back (the handshake ended, or the connection closed); nothing if it held none.
    public mutating func release(_ connection: Connection) {
        guard let held = holders.removeValue(forKey: connection) else { return }
        bySource[held.source]?.removeAll { $0 == connection }
        if bySource[held.source]?.isEmpty == true { bySource[held.source] = nil }
    }
}
