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

    /// Strangers at 300 addresses sending well-formed hellos (free: the cluster id is public) as
    /// fast as they connect: a peer whose source was admitted before keeps its slot through the
    /// whole flood, silent or vouched, while strangers only push out each other.
    @Test func aRememberedSourceOutlastsAHelloFlood() {
        var slots = HandshakeSlots<Int>(perSource: 8, total: 64)
        _ = slots.reserve(0, source: "peer")
        slots.admitted(0)
        #expect(slots.remembers("peer") && slots.count == 0)
        _ = slots.reserve(1, source: "peer")  // silent so far
        _ = slots.reserve(2, source: "peer")
        slots.vouch(2)
        for i in 3..<5_000 {
            guard case .admitted(let victim?) = slots.reserve(i, source: "10.0.\(i % 300 / 250).\(i % 300 % 250)") else { continue }
            #expect(victim > 2, "a remembered source's connection \(victim) went")
            slots.vouch(i)
        }
        // A stranger that is not remembered still gets in: it pushes out another stranger.
        guard case .admitted(let victim?) = slots.reserve(9_000, source: "198.51.100.7") else {
            Issue.record("a full table made no room")
            return
        }
        #expect(victim > 2)
        // With only remembered sources' connections held, the oldest of them goes; once a
        // stranger holds one, it is the next to go.
        var known = HandshakeSlots<Int>(perSource: 8, total: 2)
        for (i, source) in ["a", "b"].enumerated() {
            _ = known.reserve(i, source: source)
            known.admitted(i)
            _ = known.reserve(10 + i, source: source)
        }
        #expect(known.reserve(20, source: "stranger") == .admitted(evicting: 10))
        #expect(known.reserve(21, source: "stranger") == .admitted(evicting: 20))
    }

    /// A member that links once from an address and then sends hellos from it and abandons them
    /// keeps the address's standing for one abandoned handshake, not for a flood.
    @Test func aRememberedSourceThatAbandonsAHandshakeIsForgotten() {
        var slots = HandshakeSlots<Int>(perSource: 8, total: 8)
        _ = slots.reserve(0, source: "member")
        slots.admitted(0)
        _ = slots.reserve(1, source: "member")
        slots.vouch(1)
        #expect(slots.remembers("member"))
        slots.release(1)
        #expect(!slots.remembers("member"))
        // Pushed out (only remembered sources held slots) counts as abandoned too.
        var full = HandshakeSlots<Int>(perSource: 8, total: 1)
        _ = full.reserve(0, source: "a")
        full.admitted(0)
        _ = full.reserve(1, source: "a")
        _ = full.reserve(2, source: "b")
        #expect(!full.remembers("a"))
    }

    /// Remembered sources are bounded: the least recently admitted is forgotten first.
    @Test func rememberedSourcesAreBounded() {
        var slots = HandshakeSlots<Int>(perSource: 8, total: 8, rememberedSources: 2)
        for (i, source) in ["a", "b", "c"].enumerated() {
            _ = slots.reserve(i, source: source)
            slots.admitted(i)
        }
        #expect(!slots.remembers("a") && slots.remembers("b") && slots.remembers("c"))
        _ = slots.reserve(3, source: "b")
        slots.admitted(3)
        _ = slots.reserve(4, source: "d")
        slots.admitted(4)
        #expect(slots.remembers("b") && !slots.remembers("c") && slots.remembers("d"))
    }

    @Test func reservingTwiceHoldsOneSlot() {
        var slots = HandshakeSlots<Int>(perSource: 1, total: 1)
        #expect(slots.reserve(1, source: "a") == .admitted(evicting: nil))
        #expect(slots.reserve(1, source: "a") == .admitted(evicting: nil))
        #expect(slots.count == 1)
    }
}
