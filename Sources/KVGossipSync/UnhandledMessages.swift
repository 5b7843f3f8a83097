/// What a link's reader has handed to its sessions and their runners have not yet taken: how many
/// messages, and how many bytes they hold decoded (`SyncMessage.heldSize`), per session and in all. The reader stops reading
/// while either total is at its bound (`LinkOptions.queuedMessagesPerLink`, `queuedBytesPerLink`),
/// so a peer that sends faster than its sessions are handled is held back by TCP, and what it makes
/// the node hold is bounded in bytes as well as in messages. A session's runner takes its messages
/// in the order they came.
struct UnhandledMessages: Equatable {
    /// Sizes of each session's waiting messages, oldest first.
    private var sizes: [UInt32: [Int]] = [:]
    private(set) var count = 0
    private(set) var bytes = 0

    mutating func add(session: UInt32, bytes size: Int) {
        sizes[session, default: []].append(size)
        count += 1
        bytes += size
    }

    /// The session's runner took its oldest waiting message; false when none was waiting.
    mutating func take(session: UInt32) -> Bool {
        // In place: a copy of the session's sizes for every message taken would allocate.
        guard sizes[session]?.isEmpty == false, let size = sizes[session]?.removeFirst() else { return false }
        if sizes[session]?.isEmpty == true { sizes[session] = nil }
        count -= 1
        bytes -= size
        return true
    }

    /// The session ended: what still waited for it is gone with it.
    mutating func drop(session: UInt32) {
        guard let waiting = sizes.removeValue(forKey: session) else { return }
        count -= waiting.count
        bytes -= waiting.reduce(0, +)
    }

    /// Whether the reader may hand over another message: both totals under their bounds.
    func hasRoom(_ options: LinkOptions) -> Bool {
        count < options.queuedMessagesPerLink && bytes < options.queuedBytesPerLink
    }
}
