import KVGossipCore
import KVGossipNet
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Network settings of links and their sessions.
public struct LinkOptions: Sendable {
    /// The largest message a session may carry, with room for the frame's session number and seal.
    public static let largestFrameBytes = Limits.default.maxFrameBytes + 64 * 1024
    public var maxFrameBytes = largestFrameBytes
    /// The handshake must finish this fast, or the connection is closed (a stranger holds no slot).
    public var handshakeTimeout = TimeAmount.seconds(5)
    /// A link that carries nothing this long is closed (the next use dials again).
    public var idleTimeout = TimeAmount.seconds(60)
    /// A session whose peer says nothing this long fails.
    public var sessionStallTimeout = Duration.seconds(30)
    public var connectTimeout = TimeAmount.seconds(3)
    /// Connections still in their handshake, per source address and in all (`HandshakeSlots`: when
    /// all are taken, the oldest of the biggest holder makes room).
    public var pendingPerSource = 8
    public var pendingTotal = 64
    /// Established links at once, and to one node key (a peer that keeps linking loses its oldest).
    public var maxLinks = 512
    public var linksPerNode = 4
    /// Sessions a peer may have open on one link at once.
    public var sessionsPerLink = 16
    /// Messages read from a link and not yet handled, over all its sessions: past this the link
    /// stops reading (TCP pushes back on the peer) until the sessions catch up.
    public var queuedMessagesPerLink = 32
    /// Bytes those messages hold decoded (estimated: `SyncMessage.heldSize`): at or past this the
    /// link stops reading too, so what a peer can make a node hold does not grow with the message
    /// count times the largest message (Docs/security.md §Peers and links). The message that
    /// crosses it is the last one routed. Four largest frames: two full syncs in opposite
    /// directions on one link hold about three 2 MiB batches each way (counted at twice their
    /// bytes), and a smaller bound stopped both readers while both sides' sessions waited to send.
    public var queuedBytesPerLink = 4 * largestFrameBytes
    /// Bytes sent on a link and not yet written to its socket: at or past this, its sessions wait
    /// before reading their next message, so a peer that stops reading stops being answered (and a
    /// link whose backlog stays this full with nothing written for `sessionStallTimeout` is closed).
    /// One largest frame.
    public var sendBacklogBytes = largestFrameBytes
    public var limits = Limits.default
    public var syncLimits = SyncLimits.default
    /// When set, the link handshake proves both sides hold it, and it keys the stream.
    public var secret: ClusterSecret?
    public init() {}
}

/// One authenticated, encrypted connection to a peer, carrying any number of sessions (each a
/// numbered exchange of sync messages) and one-way announcements (Docs/protocol.md §Links).
///
/// Frames after the handshake are sealed with the link's own keys, one per direction; each holds
/// a session number and one message. Sessions opened by the dialing side have odd numbers, those
/// opened by the answering side even ones; 0 carries announcements.
public final class PeerLink: Sendable {
    public let peer: LinkIdentity
    /// Where the peer serves sync: the connection's remote address with the sync port it announced.
    public let address: PeerAddress
    public let initiatedHere: Bool
    public let peerClockOffsetMs: Int64
    let options: LinkOptions
    /// Seals and writes frames, each `send` with one flush.
    private let output: LinkOutput
    fileprivate let state = Mutex(State())
    /// Bytes on the wire (frames with their length prefix), for benchmarks and status.
    let bytesSent = Atomic<Int>(0)
    let bytesReceived = Atomic<Int>(0)
    private let logger: Logger

    fileprivate struct State {
        var sessions: [UInt32: SessionInbox] = [:]
        var nextSession: UInt32 = 0
        var closed = false
        var peerOpened = 0
        /// Messages routed to the sessions and not yet taken by their runners.
        var unhandled = UnhandledMessages()
        /// Wakes the reader, waiting for the runners to take some of what it queued (called once).
        var readerWaiting: (@Sendable () -> Void)?
    }

    /// Where a session's messages go: into a stream its runner reads, or to a handler called
    /// where they arrive (`openSession(answeredInPlace:)`).
    fileprivate enum SessionInbox {
        case stream(AsyncStream<SyncMessage?>.Continuation)
        case inPlace(@Sendable (SessionEvent) -> SessionStep)
    }

    /// What the link hands its owner: a session the peer opened, or an announcement.
    enum Inbound: Sendable {
        case opened(session: UInt32, first: SyncMessage, inbox: AsyncStream<SyncMessage?>)
        case announced(Hash256)
    }

    /// Closes the connection itself (which ends the reader, then everything else).
    private let disconnect: @Sendable () -> Void
    /// Begins the checks of records a session will apply once it reaches their message
    /// (`Store.precheck`).
    private let precheck: @Sendable ([Record]) -> Void

    init(
        peer: LinkIdentity, address: PeerAddress, initiatedHere: Bool, peerClockOffsetMs: Int64, options: LinkOptions,
        output: LinkOutput, logger: Logger, precheck: @escaping @Sendable ([Record]) -> Void = { _ in },
        disconnect: @escaping @Sendable () -> Void
    ) {
        self.disconnect = disconnect
        self.precheck = precheck
        self.peer = peer
        self.address = address
        self.initiatedHere = initiatedHere
        self.peerClockOffsetMs = peerClockOffsetMs
        self.options = options
        self.output = output
        self.logger = logger
        state.withLock { $0.nextSession = initiatedHere ? 1 : 2 }
    }

    public var isClosed: Bool { state.withLock { $0.closed } }
    /// Messages routed to this link's sessions and not yet taken by their runners.
    var unhandledMessages: Int { state.withLock { $0.unhandled.count } }
    /// Sessions the peer has open on this link now (at most `LinkOptions.sessionsPerLink`).
    var sessionsOpenedByPeer: Int { state.withLock { $0.peerOpened } }

    /// Bytes sent and received on this link so far.
    public var traffic: (sent: Int, received: Int) { (bytesSent.load(ordering: .relaxed), bytesReceived.load(ordering: .relaxed)) }

    /// Sends messages of one session together (sealed in order, one flush); nothing once closed.
    func send(_ messages: [SyncMessage], session: UInt32) {
        guard !messages.isEmpty else { return }
        let frames = messages.map { message in
            var w = ByteWriter(capacity: 64)
            w.u32(session)
            return w.bytes + SyncMessageCodec.encode(message)
        }
        if let bytes = output.send(frames) { bytesSent.add(bytes, ordering: .relaxed) }
    }

    func send(_ message: SyncMessage, session: UInt32) { send([message], session: session) }

    /// Tells the peer this node's tree hash.
    public func announce(_ hash: Hash256) { send(.announce(hash), session: 0) }

    /// Opens a session of ours: its number and the stream of the peer's answers.
    func openSession() throws -> (UInt32, AsyncStream<SyncMessage?>) {
        let (stream, continuation) = AsyncStream.makeStream(of: SyncMessage?.self)
        return (try register(.stream(continuation)), stream)
    }

    /// Opens a session of ours whose peer's messages, the watchdog's nudges and the link's close
    /// are handed to `handler` on the thread they happen on (a message: the link's reader), with
    /// no task waiting. For a session whose every step is quick and touches no store: the answer
    /// to a push (`PushAnswer`). The session ends when the handler says so, or with the link.
    func openSession(answeredInPlace handler: @escaping @Sendable (SessionEvent) -> SessionStep) throws -> UInt32 {
        try register(.inPlace(handler))
    }

    /// A new session of ours, numbered with this side's parity.
    private func register(_ inbox: SessionInbox) throws -> UInt32 {
        try state.withLock { s in
            guard !s.closed else { throw SyncProtocolError("the link to \(peer.name) is closed") }
            let id = s.nextSession
            s.nextSession &+= 2
            s.sessions[id] = inbox
            return id
        }
    }

    /// Wakes every session's runner so each can check for a stall (the link's watchdog, every
    /// quarter of the stall timeout: one timer per link, not one task per session).
    /// A link whose peer has read nothing of what it was sent for the stall timeout is closed here.
    func nudgeSessions() {
        if output.isStalled(longerThan: options.sessionStallTimeout) {
            logger.notice("closing a link whose peer stopped reading", metadata: [
                "peer": "\(peer.name)", "unwritten bytes over": "\(output.backlogLimit)", "for more than": "\(options.sessionStallTimeout)",
            ])
            return disconnectNow()
        }
        for (id, inbox) in state.withLock({ Array($0.sessions) }) {
            switch inbox {
            case .stream(let stream): stream.yield(nil)
            case .inPlace(let handler): carryOut(handler(.nudge), session: id)
            }
        }
    }

    /// Carries out what a session answered in place asked for.
    private func carryOut(_ step: SessionStep, session: UInt32) {
        guard case .end(let replies) = step else { return }
        send(replies, session: session)
        endSession(session)
    }

    /// Returns once what this link has sent and not yet written is under `sendBacklogBytes`, or the
    /// link is closed (`LinkOutput.roomToSend`).
    func roomToSend() async { await output.roomToSend() }

    func endSession(_ id: UInt32) {
        let (inbox, reader) = state.withLock { s in
            if id % 2 != (initiatedHere ? 1 : 0) { s.peerOpened -= 1 }
            s.unhandled.drop(session: id)
            return (s.sessions.removeValue(forKey: id), s.takeReaderIfRoom(options))
        }
        if case .stream(let stream) = inbox { stream.finish() }
        reader?()
    }

    /// A session's runner took one message from its inbox.
    func took(_ id: UInt32) {
        let reader = state.withLock { s -> (@Sendable () -> Void)? in
            guard s.unhandled.take(session: id) else { return nil }
            return s.takeReaderIfRoom(options)
        }
        reader?()
    }

    /// Returns when the sessions hold fewer unhandled messages, and fewer of their bytes, than the
    /// bounds (at once, usually), or the link closed. Only the link's reader calls it.
    func roomForMore() async {
        if state.withLock({ $0.hasRoom(options) }) { return }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            if whenRoomForMore({ c.resume() }) { c.resume() }
        }
    }

    /// True when the sessions hold fewer unhandled messages and bytes than the bounds, or the link closed;
    /// otherwise false, and `wake` is called once that is so (on the thread that makes room).
    /// Only the link's reader calls it, and waits for one wake at a time.
    func whenRoomForMore(_ wake: @escaping @Sendable () -> Void) -> Bool {
        state.withLock { s in
            if s.hasRoom(options) { return true }
            s.readerWaiting = wake
            return false
        }
    }

    /// Whether this side opened (or would open) `session`: odd numbers for the dialing side, even
    /// for the answering side.
    private func isOurs(_ session: UInt32) -> Bool { session % 2 == (initiatedHere ? 1 : 0) }

    /// Routes one received frame; returns what the owner must handle.
    func route(_ frame: [UInt8]) throws -> Inbound? {
        var r = ByteReader(frame)
        let session = try r.u32("session")
        // Decoded within the session's limits: a message no session may take is refused before
        // its items are decoded.
        let message = try SyncMessageCodec.decode(Array(frame[4...]), limits: options.limits, session: options.syncLimits)
        if session == 0 {
            guard case .announce(let hash) = message else { throw SyncProtocolError("session 0 carries announcements only") }
            return .announced(hash)
        }
        var queued = false
        defer {
            // Pulled records queue behind the batch their session is applying: their checks can
            // begin now. Only in a session of ours (our parity: it may have asked for them); in a
            // session the peer opened they end the session unread. The store keeps at most a few
            // such batches, so a peer sending pulled batches nobody asked for wastes at most those.
            // (A message over the session's record limit was refused as it was decoded.)
            if queued, isOurs(session), case .pulled(let records, _) = message { precheck(records) }
        }
        var handler: (@Sendable (SessionEvent) -> SessionStep)?
        let inbound = try state.withLock { s -> Inbound? in
            switch s.sessions[session] {
            case .stream(let inbox):
                s.unhandled.add(session: session, bytes: message.heldSize(frameBytes: frame.count))
                inbox.yield(message)
                queued = true
                return nil
            case .inPlace(let answer):
                handler = answer
                return nil
            case nil:
                break
            }
            // A new session must be the peer's own (its parity) and open with `open`.
            guard !isOurs(session), case .open = message else {
                throw SyncProtocolError("message for unknown session \(session)")
            }
            guard s.peerOpened < options.sessionsPerLink else {
                throw SyncProtocolError("more than \(options.sessionsPerLink) sessions open at once")
            }
            s.peerOpened += 1
            let (stream, continuation) = AsyncStream.makeStream(of: SyncMessage?.self)
            s.sessions[session] = .stream(continuation)
            return .opened(session: session, first: message, inbox: stream)
        }
        // Outside the lock: the handler's step may end the session, which takes it.
        if let handler { carryOut(handler(.message(message)), session: session) }
        return inbound
    }

    /// Drops the connection (a peer no longer admitted, the agent stopping).
    public func disconnectNow() {
        close()
        disconnect()
    }

    /// Ends every session and the sending half (the connection closes once what was sent is out).
    public func close() {
        let (sessions, reader) = state.withLock { s -> ([SessionInbox], (@Sendable () -> Void)?) in
            s.closed = true
            defer {
                s.sessions = [:]
                s.readerWaiting = nil
            }
            return (Array(s.sessions.values), s.readerWaiting)
        }
        for inbox in sessions {
            switch inbox {
            case .stream(let stream): stream.finish()
            case .inPlace(let handler): _ = handler(.closed)
            }
        }
        reader?()
        output.close()
    }
}

/// Runs one session's state machine over a link: sends its opening, answers each message from its
/// inbox on the store's threads (answers may verify signatures and commit), and ends when the
/// driver is finished, the link closes or the peer stalls. A step that finds itself on one of the
/// store's threads (`StoreThreads.isCurrentThread`: a session that prefers them and resumed there)
/// runs where it is.
///
/// An inbox carries the peer's messages and, from the link's watchdog, `nil` now and then: a
/// session that has heard nothing for the stall timeout when one arrives fails.
enum SessionRunner {
    static func run<D: SyncDriver>(
        _ driver: inout D, opening: [SyncMessage], first: SyncMessage?, session: UInt32, inbox: AsyncStream<SyncMessage?>,
        link: PeerLink, pool: NIOThreadPool
    ) async throws {
        let timeout = link.options.sessionStallTimeout
        defer { link.endSession(session) }
        link.send(opening, session: session)
        var local = driver
        defer { driver = local }
        var heard = ContinuousClock.now
        var messages = inbox.makeAsyncIterator()
        var pendingFirst = first
        while true {
            // A peer that does not read what it asked for is not asked for more meanwhile. The wait
            // comes before the next message is taken, when nothing of the last one is held (it, the
            // driver's step and its replies end with the loop's body): a message taken is no longer
            // counted by the link (`took`), and a session waiting while it held one would keep
            // memory the link's bounds do not see.
            await link.roomToSend()
            let item: SyncMessage??
            // The first message came with the session's opening and was never counted as waiting
            // (`route` hands it over with the inbox), so taking it uncounts nothing.
            let counted = pendingFirst == nil
            if let f = pendingFirst {
                item = .some(f)
                pendingFirst = nil
            } else {
                item = await messages.next()
            }
            guard let item else { break }
            guard let message = item else {
                if ContinuousClock.now - heard > timeout { throw SyncProtocolError("\(link.peer.name) said nothing for \(timeout)") }
                continue
            }
            if counted { link.took(session) }
            heard = ContinuousClock.now
            let current = local
            do {
                let step = { @Sendable () throws -> (D, [SyncMessage]) in
                    var d = current
                    let replies = try d.receive(message)
                    return (d, replies)
                }
                // An opening reads at most the tree hash, which the store keeps in memory: no
                // hand-off to the store's threads and back for it.
                let (next, replies) = message.isOpening || StoreThreads.isCurrentThread ? try step() : try await pool.runIfActive(step)
                local = next
                link.send(replies, session: session)
            } catch let error as SyncProtocolError {
                link.send(.failure(error.description), session: session)
                throw error
            }
            if local.isFinished { return }
        }
        if !local.isFinished { throw SyncProtocolError("the link to \(link.peer.name) closed mid-session") }
    }
}

extension SyncMessage {
    var isOpening: Bool {
        if case .open = self { true } else { false }
    }
}

extension PeerLink.State {
    /// Whether the link's reader may route another frame: its sessions hold fewer unhandled
    /// messages, and fewer of their bytes, than the options allow, or the link is closed (routing
    /// then only finds the sessions gone).
    func hasRoom(_ options: LinkOptions) -> Bool { closed || unhandled.hasRoom(options) }

    /// The waiting reader, taken, if the queues have room again.
    mutating func takeReaderIfRoom(_ options: LinkOptions) -> (@Sendable () -> Void)? {
        guard unhandled.hasRoom(options), let reader = readerWaiting else { return nil }
        readerWaiting = nil
        return reader
    }
}

/// What a session answered in place (`PeerLink.openSession(answeredInPlace:)`) is told.
enum SessionEvent: Sendable {
    case message(SyncMessage)
    /// The link's watchdog: a session whose peer has said nothing for the stall timeout ends.
    case nudge
    /// The link closed; the session is gone with it.
    case closed
}

/// What a session answered in place does after an event: goes on, or sends these last messages
/// and ends.
enum SessionStep: Sendable, Equatable {
    case goOn
    case end(replies: [SyncMessage])
}

/// A sync state machine as a session runs it.
public protocol SyncDriver: Sendable {
    var isFinished: Bool { get }
    mutating func receive(_ message: SyncMessage) throws -> [SyncMessage]
}

extension SyncResponder: SyncDriver {}
extension SyncInitiator: SyncDriver {}
extension SyncPusher: SyncDriver {}
