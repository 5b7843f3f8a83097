import Testing
@testable import KVGossipSync

/// The count behind a link's backpressure: messages and their bytes, per session, taken oldest
/// first, dropped with their session.
struct UnhandledMessagesTests {
    @Test func messagesAndTheirBytesAreCountedUntilTakenOrDropped() {
        var u = UnhandledMessages()
        u.add(session: 2, bytes: 100)
        u.add(session: 2, bytes: 7)
        u.add(session: 4, bytes: 30)
        #expect(u.count == 3 && u.bytes == 137)

        // A runner takes its session's oldest message: the 100 bytes, not the 7.
        var took = u.take(session: 2)
        #expect(took)
        #expect(u.count == 2 && u.bytes == 37)
        took = u.take(session: 2)
        #expect(took)
        took = u.take(session: 2)
        #expect(!took, "took a message that never came")
        #expect(u.count == 1 && u.bytes == 30)

        u.add(session: 4, bytes: 5)
        u.drop(session: 4)
        u.drop(session: 6)
        #expect(u == UnhandledMessages())
    }

    @Test func thereIsRoomOnlyUnderBothBounds() {
        var options = LinkOptions()
        options.queuedMessagesPerLink = 3
        options.queuedBytesPerLink = 100
        var u = UnhandledMessages()
        #expect(u.hasRoom(options))
        u.add(session: 2, bytes: 99)
        #expect(u.hasRoom(options), "under both bounds")
        u.add(session: 2, bytes: 1)
        #expect(!u.hasRoom(options), "the bytes are at their bound")
        _ = u.take(session: 2)
        #expect(u.hasRoom(options))
        u.add(session: 4, bytes: 0)
        u.add(session: 4, bytes: 0)
        #expect(!u.hasRoom(options), "three messages, the message bound")
    }
}
