import KVGossipCore
import Testing
@testable import KVGossipMount

/// The rules of `PassthroughBackings`, without a kernel.
@Suite struct PassthroughBackingsTests {
    static func version(_ n: UInt64) -> RecordVersion {
        RecordVersion(timestamp: HLC(physicalMs: n), kind: .value, digest: Hash256(bytes: Array(repeating: UInt8(n), count: 32))!)
    }

    @Test func aBackingServesItsVersionAndIsReplacedOnlyWhenNoHandleNamesIt() {
        var table = PassthroughBackings()
        let v1 = Self.version(1), v2 = Self.version(2)
        #expect(table.decide(7, version: v1) == .make)
        #expect(table.adopt(7, version: v1, id: 11, bytes: 5) == .use(11))
        #expect(table.decide(7, version: v1) == .use(11))
        table.opened(7)
        // Another version while v1's handles are open: direct I/O naming v1's backing, as writers do.
        #expect(table.decide(7, version: v2) == .alongside(11))
        #expect(table.openBacking(7) == 11)
        table.released(7)
        table.released(7)
        #expect(table.openBacking(7) == nil)
        #expect(table.takeClosable().isEmpty)
        // Nobody holds it: the new version gets a backing of its own and the old one is closed.
        #expect(table.decide(7, version: v2) == .make)
        #expect(table.adopt(7, version: v2, id: 12, bytes: 5) == .use(12))
        #expect(table.takeClosable() == [11])
    }

    @Test func twoOpensRacingToMakeTheSameBackingShareTheFirst() {
        var table = PassthroughBackings()
        let v1 = Self.version(1), v2 = Self.version(2)
        #expect(table.adopt(3, version: v1, id: 21, bytes: 1) == .use(21))
        #expect(table.adopt(3, version: v1, id: 22, bytes: 1) == .use(21))
        #expect(table.takeClosable() == [22])
        // One of another version made meanwhile loses to the open one: direct I/O naming it.
        #expect(table.adopt(3, version: v2, id: 23, bytes: 1) == .alongside(21))
        #expect(table.takeClosable() == [23])
        #expect(table.openBacking(3) == 21)
        // Three opens count: the backing is replaced only after all three are released.
        table.released(3)
        table.released(3)
        #expect(table.decide(3, version: v2) == .alongside(21))
        table.released(3)
        #expect(table.decide(3, version: v2) == .make)
    }

    @Test func idleBackingsPastTheBudgetAreClosedOldestFirst() {
        var table = PassthroughBackings(idleBudgetBytes: 100, idleBudgetCount: 1_000)
        for ino in UInt64(1)...5 {
            #expect(table.adopt(ino, version: Self.version(ino), id: Int32(ino), bytes: 30) == .use(Int32(ino)))
        }
        // Held open, they count against nothing. Released one by one: past 100 idle bytes (the
        // fourth), the oldest go until three quarters of the budget is left; the fifth fits.
        for ino in UInt64(1)...5 { table.released(ino) }
        let closed = table.takeClosable()
        #expect(closed == [1, 2], "\(closed)")
        #expect(table.idleBytes == 90)
        #expect(table.decide(1, version: Self.version(1)) == .make)
        #expect(table.decide(5, version: Self.version(5)) == .use(5))
    }

    @Test func aBackingAHandleMayMapWritableServesNoLaterReader() {
        var table = PassthroughBackings()
        let v1 = Self.version(1)
        #expect(table.adopt(4, version: v1, id: 31, bytes: 8) == .use(31))
        table.opened(4)  // an O_RDWR writer names it
        table.taint(4)
        #expect(table.decide(4, version: v1) == .alongside(31))
        table.released(4)
        table.released(4)
        // Nobody holds it: the same version gets a fresh backing and the tainted one is closed.
        #expect(table.decide(4, version: v1) == .make)
        #expect(table.adopt(4, version: v1, id: 32, bytes: 8) == .use(32))
        #expect(table.takeClosable() == [31])
    }
}
