import KVGossipCore
import Testing

/// The slots of connections still in their handshake: a flood from many addresses cannot keep a
/// newcomer out, and one address cannot hold more than its share.
struct HandshakeSlotsTests {
    @Test func aSourceIsCappedOnItsOwn() {
        var slots = HandshakeSlots<Int>(perSource: 2, total: 10)
        #expect(slots.reserve(1, source: "a") == .admitted(evicting: nil))
        #expect(slots.reserve(2, source: "a") == .admitted(evicting: nil))
        #expect(slots.reserve(3, source: "a") == .refused)
        #expect(slots.reserve(4, source: "b") == .admitted(evicting: nil))
        slots.release(1)
        #expect(slots.reserve(5, source: "a") == .admitted(evicting: nil))
        #expect(slots.count == 3)
    }

    @Test func aFullTableMakesRoomFromTheBiggestHolder() {
        var slots = HandshakeSlots<Int>(perSource: 3, total: 4)
        _ = slots.reserve(1, source: "a")
        _ = slots.reserve(2, source: "b")
        _ = slots.reserve(3, source: "b")
        _ = slots.reserve(4, source: "c")
        // b holds two: its oldest (2) goes.
        #expect(slots.reserve(5, source: "d") == .admitted(evicting: 2))
        #expect(slots.count == 4)
        // Now a, b, c, d hold one each: the oldest of all (1, from a) goes.
        #expect(slots.reserve(6, source: "e") == .admitted(evicting: 1))
        // Releasing an evicted connection again changes nothing.
        slots.release(2)
        #expect(slots.count == 4)
    }

    /// 100 slow connections from 100 addresses, then a real peer: it gets a slot at once.
    @Test func aFloodFromManyAddressesCannotLockOutAPeer() {
        var slots = HandshakeSlots<Int>(perSource: 8, total: 64)
        var evicted = 0
        for i in 0..<100 {
            if case .admitted(let victim) = slots.reserve(i, source: "10.0.\(i / 250).\(i % 250)"), victim != nil { evicted += 1 }
        }
        #expect(evicted == 36 && slots.count == 64)
        #expect(slots.reserve(1000, source: "192.0.2.1") != .refused)
    }

    /// Connections that sent a hello are the last to go: a stream of silent newcomers cannot push
    /// out a peer in the middle of its handshake.
    @Test func aVouchedConnectionOutlastsSilentOnes() {
        var slots = HandshakeSlots<Int>(perSource: 8, total: 4)
        _ = slots.reserve(0, source: "peer")
        slots.vouch(0)
        for i in 1...3 { _ = slots.reserve(i, source: "x\(i)") }
        for i in 4..<200 {
            guard case .admitted(let victim?) = slots.reserve(i, source: "x\(i)") else {
                Issue.record("a full table made no room")
                return
            }
            #expect(victim != 0)
        }
        // Only vouched ones left to choose from: the oldest of them goes.
        var all = HandshakeSlots<Int>(perSource: 8, total: 2)
        _ = all.reserve(1, source: "a")
        _ = all.reserve(2, source: "b")
        all.vouch(1)
        all.vouch(2)
        #expect(all.reserve(3, source: "c") == .admitted(evicting: 1))
    }

    @Test func reservingTwiceHoldsOneSlot() {
        var slots = HandshakeSlots<Int>(perSource: 1, total: 1)
        #expect(slots.reserve(1, source: "a") == .admitted(evicting: nil))
        #expect(slots.reserve(1, source: "a") == .admitted(evicting: nil))
        #expect(slots.count == 1)
    }
}
