import NIOCore
import Synchronization

/// A connection a listener handed out. NIO traps ("Deinited NIOAsyncWriter without calling
/// finish()") when one is released before `executeThenClose` ran on it, so whoever made it must
/// see it served or closed.
public protocol AcceptedConnection: Sendable {
    /// Tells the connection apart while it waits to be taken.
    var channel: any Channel { get }
    /// Closes the connection without reading from it.
    func closeUnserved() async
}

extension NIOAsyncChannel: AcceptedConnection {
    public func closeUnserved() async { try? await executeThenClose { _, _ in } }
}

/// Serves a listener's connections until the serving task is cancelled, then stops without
/// leaving a connection NIO made unclosed (Docs/architecture.md §Stopping a server). One per
/// listener: its initializer passes each connection it makes through `track`, and `serve` hands
/// them to their handler.
///
/// Cancelling the loop that reads a listener's `inbound` would drop the connections NIO has
/// accepted and not yet handed over, so cancellation never reaches that loop: it runs in a task of
/// its own, and a cancelled `serve` closes the listener instead, after which NIO hands over what it
/// holds and ends `inbound`. A connection whose initializer finishes after the listener closed has
/// no queue left to go to and NIO drops it itself: `track` keeps every connection until `serve`
/// takes it, and closes those it never took.
///
/// Connections taken after the stop are closed unserved: a stopping server starts no new work,
/// and a handler given one would only begin a handshake to break it off (and count or log it as a
/// refusal). Then the handlers still running are cancelled, and `serve` returns once all have ended.
public final class AcceptedConnections<Connection: AcceptedConnection>: Sendable {
    private struct State {
        /// Made by the initializer and not yet taken from `inbound`.
        var waiting: [ObjectIdentifier: Connection] = [:]
        var stopRequested = false
        var inboundEnded = false
    }

    private let state = Mutex(State())

    public init() {}

    /// Wraps what the listener's initializer returns, keeping each connection until `serve` takes it.
    public func track(_ made: EventLoopFuture<Connection>) -> EventLoopFuture<Connection> {
        made.map { connection in
            let kept = self.state.withLock { state in
                guard !state.inboundEnded else { return false }
                state.waiting[ObjectIdentifier(connection.channel)] = connection
                return true
            }
            // Made after `serve` stopped taking connections, so NIO will drop it: closed here, in a
            // task because closing waits.
            if !kept { Task { await connection.closeUnserved() } }
            return connection
        }
    }

    /// Gives each connection of `listener` to `handle`, in a task of its own, until the calling task
    /// is cancelled or the listener closes; throws what the listener throws.
    public func serve(_ listener: NIOAsyncChannel<Connection, Never>, _ handle: @escaping @Sendable (Connection) async -> Void) async throws {
        let accepting = Task { try await takeAll(from: listener, handle) }
        try await withTaskCancellationHandler {
            try await accepting.value
        } onCancel: {
            // Once `inbound` has ended, cancelling its task reaches only the handlers.
            if requestStop() { accepting.cancel() }
            listener.channel.close(promise: nil)
        }
    }

    /// Closes a listener that will not be served (its set-up failed after the bind), and every
    /// connection it made meanwhile, as a cancelled `serve` does: closing the listener alone would
    /// leave those to NIO, which traps.
    public func closeUnserved(_ listener: NIOAsyncChannel<Connection, Never>) async {
        let stopping = Task { try? await serve(listener) { await $0.closeUnserved() } }
        stopping.cancel()
        await stopping.value
    }

    private func takeAll(from listener: NIOAsyncChannel<Connection, Never>, _ handle: @escaping @Sendable (Connection) async -> Void) async throws {
        try await withThrowingDiscardingTaskGroup { group in
            // Whether `inbound` ended or threw: nothing is left to take, so the connections never
            // taken are closed now, and a stop may cancel the handlers.
            defer {
                let (leftovers, stopping) = endInbound()
                for connection in leftovers { group.addTask { await connection.closeUnserved() } }
                if stopping { group.cancelAll() }
            }
            try await listener.executeThenClose { inbound in
                for try await connection in inbound {
                    let stopping = take(connection)
                    group.addTask { if stopping { await connection.closeUnserved() } else { await handle(connection) } }
                }
            }
        }
    }

    /// Whether a stop had been requested.
    private func take(_ connection: Connection) -> Bool {
        state.withLock { state in
            state.waiting[ObjectIdentifier(connection.channel)] = nil
            return state.stopRequested
        }
    }

    /// Whether `inbound` had already ended.
    private func requestStop() -> Bool {
        state.withLock { state in
            state.stopRequested = true
            return state.inboundEnded
        }
    }

    /// The connections never taken, and whether a stop had been requested.
    private func endInbound() -> (leftovers: [Connection], stopping: Bool) {
        state.withLock { state in
            state.inboundEnded = true
            defer { state.waiting = [:] }
            return (Array(state.waiting.values), state.stopRequested)
        }
    }
}
