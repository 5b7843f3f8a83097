import KVGossipCore
import Synchronization

/// A push sent and waiting for its answer, which it takes where the answer arrives: on the link's
/// reader, as a session answered in place (`PeerLink.openSession(answeredInPlace:)`).
///
/// Why: the answer to a push is a list of results, and taking it is counting them. It used to
/// resume a task waiting on the session's inbox, which woke one of the store's threads for every
/// answer (two per write at three hosts) only to count and end the session there. An answer that
/// carries revocations to apply (Docs/contract.md §Revocation) does need the store: that one is
/// handed to `storeWork` and taken there.
final class PushAnswer: Sendable {
    /// How the push ended: the peer's result per record, or why there is none.
    enum Outcome: Sendable {
        case answered([(key: Key, digest: Hash256, held: Bool)])
        case failed(any Error)
    }

    private let state: Mutex<State>
    private let peer: String
    private let stallTimeout: Duration
    private let ended: @Sendable (Outcome) -> Void
    private let storeWork: @Sendable (@escaping @Sendable (_ running: Bool) -> Void) -> Void

    private struct State {
        var pusher: SyncPusher
        /// Set once the push has ended, however: what comes after changes nothing.
        var over = false
        let sentAt = ContinuousClock.now
    }

    /// - Parameters:
    ///   - ended: called once, with how the push ended.
    ///   - storeWork: runs a step that needs the store (applying revocations) on the store's threads,
    ///     telling it whether they are still running (not once the engine stops).
    init(
        _ pusher: SyncPusher, stallTimeout: Duration, storeWork: @escaping @Sendable (@escaping @Sendable (_ running: Bool) -> Void) -> Void,
        ended: @escaping @Sendable (Outcome) -> Void
    ) {
        state = Mutex(State(pusher: pusher))
        peer = pusher.report.peer
        self.stallTimeout = stallTimeout
        self.storeWork = storeWork
        self.ended = ended
    }

    /// The session's handler (`SessionEvent` in, `SessionStep` out), as a driver receives a message.
    func receive(_ event: SessionEvent) -> SessionStep {
        switch event {
        case .message(let message):
            guard var pusher = takePusher() else { return .end(replies: []) }
            if Self.carriesRevocations(message) {
                // The session ends here; what the store then makes of the answer goes to the
                // instance only. (A protocol error found there is not told to the peer, which
                // ended its side of the push when it sent the answer.)
                storeWork { [self, pusher] running in
                    guard running else { return ended(.failed(CancellationError())) }
                    var taken = pusher
                    finish(&taken, with: message)
                }
                return .end(replies: [])
            }
            return finish(&pusher, with: message)
        case .nudge:
            let stalled = state.withLock { s in
                guard !s.over, ContinuousClock.now - s.sentAt > stallTimeout else { return false }
                s.over = true
                return true
            }
            guard stalled else { return .goOn }
            ended(.failed(SyncProtocolError("\(peer) said nothing for \(stallTimeout)")))
            return .end(replies: [])
        case .closed:
            guard takePusher() != nil else { return .end(replies: []) }
            ended(.failed(SyncProtocolError("the link to \(peer) closed mid-session")))
            return .end(replies: [])
        }
    }

    /// The pusher, once: nil if the push already ended.
    private func takePusher() -> SyncPusher? {
        state.withLock { s in
            guard !s.over else { return nil }
            s.over = true
            return s.pusher
        }
    }

    /// Takes the answer; a protocol error is told to the peer, as a session's runner does.
    @discardableResult
    private func finish(_ pusher: inout SyncPusher, with message: SyncMessage) -> SessionStep {
        do {
            _ = try pusher.receive(message)
            ended(.answered(zip(pusher.records, pusher.results).map { (key: $0.key, digest: $0.digest, held: $1.code != .refused) }))
            return .end(replies: [])
        } catch let error as SyncProtocolError {
            ended(.failed(error))
            return .end(replies: [.failure(error.description)])
        } catch {
            ended(.failed(error))
            return .end(replies: [])
        }
    }

    /// Whether taking `message` applies revocations (a result refused for a revoked grant).
    static func carriesRevocations(_ message: SyncMessage) -> Bool {
        guard case .results(let results) = message else { return false }
        return results.contains { $0.code == .refused && !$0.revocations.isEmpty }
    }
}

/// One push of the instance sent as several (`SyncLimits.batches`), one after the other: each part
/// is sent once the one before is answered, so a peer has one of them open at a time, and the
/// results of all, in order, are reported as one answer; the first failure ends it.
final class PushParts: Sendable {
    typealias Send = @Sendable (_ batch: [Record], _ answered: @escaping @Sendable (PushAnswer.Outcome) -> Void) throws -> Void

    private struct State {
        var waiting: [[Record]]
        var results: [(key: Key, digest: Hash256, held: Bool)] = []
        var send: Send?
    }

    private let state: Mutex<State>
    private let ended: @Sendable (PushAnswer.Outcome) -> Void

    init(_ batches: [[Record]], ended: @escaping @Sendable (PushAnswer.Outcome) -> Void) {
        state = Mutex(State(waiting: batches))
        self.ended = ended
    }

    /// Sends the first part; a failure to send it is thrown, a later part's is reported. With no
    /// part at all, the push is answered at once, with nothing.
    func start(_ send: @escaping Send) throws {
        let empty = state.withLock { s -> Bool in
            s.send = send
            return s.waiting.isEmpty
        }
        if empty { return ended(.answered([])) }
        try sendNext()
    }

    private func sendNext() throws {
        let next = state.withLock { s -> ([Record], Send)? in
            guard !s.waiting.isEmpty, let send = s.send else { return nil }
            return (s.waiting.removeFirst(), send)
        }
        guard let (batch, send) = next else { return }
        try send(batch) { self.answered($0) }
    }

    private func answered(_ outcome: PushAnswer.Outcome) {
        guard case .answered(let results) = outcome else {
            state.withLock { $0.send = nil }
            return ended(outcome)
        }
        let done = state.withLock { s -> [(key: Key, digest: Hash256, held: Bool)]? in
            s.results += results
            guard s.waiting.isEmpty else { return nil }
            s.send = nil
            return s.results
        }
        if let done { return ended(.answered(done)) }
        do { try sendNext() } catch { ended(.failed(error)) }
    }
}
