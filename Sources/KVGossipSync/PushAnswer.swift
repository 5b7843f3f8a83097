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
