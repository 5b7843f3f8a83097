import KVGossipCore
import Synchronization

/// The connections of one listener still in their handshake (`HandshakeSlots`), with how to close
/// each: when every slot is taken, the oldest connection of the biggest holder is closed to make
/// room, so strangers that never finish cannot lock anyone out. The metrics listener counts its
/// connections the same way for their whole life, vouching for one once it has been answered.
public final class PendingHandshakes: Sendable {
    private struct State {
        var slots: HandshakeSlots<UInt64>
        var closers: [UInt64: @Sendable () -> Void] = [:]
        var next: UInt64 = 0
    }

    private let state: Mutex<State>

    public init(perSource: Int, total: Int) {
        state = Mutex(State(slots: HandshakeSlots(perSource: perSource, total: total)))
    }

    /// Takes a slot for a connection from `source`: nil when that source already holds its share,
    /// else the connection's number for `vouch` and `release`.
    public func reserve(_ source: String, close: @escaping @Sendable () -> Void) -> UInt64? {
        let (number, evict) = state.withLock { s -> (UInt64?, (@Sendable () -> Void)?) in
            let number = s.next
            s.next += 1
            switch s.slots.reserve(number, source: source) {
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
    public func vouch(_ number: UInt64) {
        state.withLock { $0.slots.vouch(number) }
    }

    /// The connection's peer was admitted: the slot is given back and its source remembered, so
    /// its next handshakes keep their slots longer than strangers' (`HandshakeSlots`).
    public func admitted(_ number: UInt64) {
        state.withLock { s in
            s.slots.admitted(number)
            s.closers[number] = nil
        }
    }

    public func release(_ number: UInt64) {
        state.withLock { s in
            s.slots.release(number)
            s.closers[number] = nil
        }
    }
}
