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
///
/// A hello proves nothing, though: the cluster id in it is public, so strangers at many addresses
/// can send well-formed hellos as fast as they connect, and while they churn the slots, a real
/// peer's handshake, a few milliseconds long, may be the oldest when the next one arrives. So the
/// slots also remember the sources whose connections were admitted lately (`admitted`, at most
/// `rememberedSources`, the least recent forgotten first): a connection from such a source gives
/// up its slot only after every connection from elsewhere has. A stranger cannot get its address
/// remembered without being admitted, and an admitted peer that floods is still held to
/// `perSource` and is the biggest holder among the remembered; a remembered source whose
/// connection ends without being admitted is forgotten (`release`).
public struct HandshakeSlots<Connection: Hashable & Sendable>: Sendable {
    public enum Decision: Equatable, Sendable {
        /// The connection holds a slot; close `evicting` (if any) to make the room.
        case admitted(evicting: Connection?)
        /// Its source already holds `perSource` slots: close the newcomer.
        case refused
    }

    public let perSource: Int
    public let total: Int
    public let rememberedSources: Int
    private var holders: [Connection: (source: String, order: UInt64, vouched: Bool, known: Bool)] = [:]
    private var bySource: [String: [Connection]] = [:]
    private var nextOrder: UInt64 = 0
    /// Sources whose connections were admitted, with when (in `nextOrder`'s count) they last were.
    private var admittedSources: [String: UInt64] = [:]

    public init(perSource: Int, total: Int, rememberedSources: Int = 4_096) {
        precondition(perSource >= 1 && total >= 1, "slots: at least one per source and one in all")
        self.perSource = perSource
        self.total = total
        self.rememberedSources = max(1, rememberedSources)
    }

    /// How many slots are held.
    public var count: Int { holders.count }

    /// Asks a slot for `connection`, which came from `source`.
    public mutating func reserve(_ connection: Connection, source: String) -> Decision {
        guard holders[connection] == nil else { return .admitted(evicting: nil) }
        guard bySource[source, default: []].count < perSource else { return .refused }
        var evicted: Connection?
        if holders.count >= total {
            // Strangers before remembered sources; within each, the silent before the vouched.
            for (known, vouched) in [(false, false), (false, true), (true, false), (true, true)] where evicted == nil {
                evicted = victim(known: known, vouched: vouched)
            }
            release(evicted!)
        }
        holders[connection] = (source, nextOrder, false, admittedSources[source] != nil)
        nextOrder += 1
        bySource[source, default: []].append(connection)
        return .admitted(evicting: evicted)
    }

    /// The connection sent a well-formed hello: it is evicted only after the silent ones.
    public mutating func vouch(_ connection: Connection) {
        holders[connection]?.vouched = true
    }

    /// The connection's peer was admitted: its slot is given back, and its source remembered.
    public mutating func admitted(_ connection: Connection) {
        guard let held = drop(connection) else { return }
        admittedSources[held.source] = nextOrder
        nextOrder += 1
        if admittedSources.count > rememberedSources, let least = admittedSources.min(by: { $0.value < $1.value })?.key {
            admittedSources[least] = nil
        }
    }

    /// Whether a connection from `source` would be admitted lately (`admitted`).
    public func remembers(_ source: String) -> Bool { admittedSources[source] != nil }

    /// The oldest connection of the source holding the most slots, among those from remembered
    /// sources or not, vouched or not; ties go to the source whose oldest is oldest, so the choice
    /// does not depend on dictionary order.
    private func victim(known: Bool, vouched: Bool) -> Connection? {
        var best: (count: Int, oldest: Connection, order: UInt64)?
        for (_, connections) in bySource {
            let eligible = connections.filter { holders[$0]!.vouched == vouched && holders[$0]!.known == known }
            guard let first = eligible.first else { continue }
            let order = holders[first]!.order
            if best == nil || eligible.count > best!.count || (eligible.count == best!.count && order < best!.order) {
                best = (eligible.count, first, order)
            }
        }
        return best?.oldest
    }

    /// Gives the slot back (the handshake ended, or the connection closed); nothing if it held none.
    /// A remembered source whose connection ends this way (closed, refused, past its deadline,
    /// or pushed out) is forgotten: a member that links once from many addresses and then sends
    /// hellos from them keeps each address's standing for one abandoned handshake at most.
    public mutating func release(_ connection: Connection) {
        guard let held = drop(connection) else { return }
        if held.known { admittedSources[held.source] = nil }
    }

    private mutating func drop(_ connection: Connection) -> (source: String, order: UInt64, vouched: Bool, known: Bool)? {
        guard let held = holders.removeValue(forKey: connection) else { return nil }
        bySource[held.source]?.removeAll { $0 == connection }
        if bySource[held.source]?.isEmpty == true { bySource[held.source] = nil }
        return held
    }
}
