import NIOCore
import NIOPosix
import Synchronization

/// One RPC connection to a Serf agent.
///
/// Requests, streams and queries share the connection, each on its own Seq. Incoming objects are
/// dispatched on the event loop straight into waiting calls and unbounded stream buffers, so a slow
/// consumer never stalls the reader (the agent drops stream events once its 512-event buffer fills).
/// Queries received on a stream carry this connection, so their answer always goes where the agent
/// expects it. The connection does not reconnect: `SerfSession` does.
public final class SerfRPCClient: Sendable {
    public let address: SerfRPCAddress
    private let requestTimeout: Duration
    private let state = Mutex(State())
    private let nextSeq = Atomic<UInt64>(0)

    private typealias Waiter = CheckedContinuation<SerfDemultiplexer.Frame, any Error>
    private typealias QuerySink = AsyncThrowingStream<SerfQueryEvent, any Error>.Continuation
    private typealias StreamSink = AsyncThrowingStream<SerfStreamEvent, any Error>.Continuation

    private struct State {
        var demux = SerfDemultiplexer()
        var channel: (any Channel)?
        var failure: SerfError?
        var waiters: [UInt64: Waiter] = [:]
        var querySinks: [UInt64: QuerySink] = [:]
        var streamSinks: [UInt64: StreamSink] = [:]
        var closeWaiters: [CheckedContinuation<SerfError, Never>] = []
    }

    private init(address: SerfRPCAddress, requestTimeout: Duration) {
        self.address = address
        self.requestTimeout = requestTimeout
    }

    /// Connects, performs the handshake (IPC version 1) and, when `authKey` is given, `auth`.
    /// - Parameter requestTimeout: how long a command may wait for its reply before failing.
    public static func connect(
        to address: SerfRPCAddress, authKey: String? = nil, requestTimeout: Duration = .seconds(10),
        limits: MsgPackDecoder.Limits = MsgPackDecoder.Limits()
    ) async throws -> SerfRPCClient {
        let client = SerfRPCClient(address: address, requestTimeout: requestTimeout)
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(3))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let decoder = MsgPackFrameDecoder(decoder: MsgPackDecoder(limits: limits))
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(decoder))
                    try channel.pipeline.syncOperations.addHandler(SerfInboundHandler(client: client))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: address.host, port: address.port).get()
        } catch {
            throw SerfError.connectionClosed("cannot connect to serf RPC at \(address): \(error)")
        }
        client.attach(channel)
        do {
            try await client.call(.handshake, ["Version": 1])
            if let authKey { try await client.call(.auth, ["AuthKey": .string(authKey)]) }
        } catch {
            await client.close()
            throw error
        }
        return client
    }

    private func attach(_ channel: any Channel) {
        let closeNow = state.withLock { s in
            if s.failure != nil { return true }
            s.channel = channel
            return false
        }
        if closeNow { channel.close(promise: nil) }
    }

    // MARK: - Commands

    /// All members the agent knows, itself and failed/left ones included.
    public func members() async throws -> [SerfMember] {
        try SerfMember.list(decoding: try await body(of: .members))
    }

    /// Sets and deletes this node's tags; the change reaches peers as `member-update`.
    public func tags(set: [String: String] = [:], delete: [String] = []) async throws {
        let tags = MsgPackValue.map(set.sorted { $0.key < $1.key }.map { (.string($0.key), .string($0.value)) })
        try await call(.tags, ["Tags": tags, "DeleteTags": .array(delete.map { .string($0) })])
    }

    /// Asks the agent to join the nodes at `addresses` (`ip:port`); returns how many it reached.
    @discardableResult
    public func join(_ addresses: [String], replay: Bool = false) async throws -> Int {
        let reply = try await body(of: .join, ["Existing": .array(addresses.map { .string($0) }), "Replay": .bool(replay)])
        return try SerfFields(reply, "join reply").integer("Num")
    }

    /// The agent's `stats` sections (all values are strings).
    public func stats() async throws -> [String: [String: String]] {
        let reply = try await body(of: .stats)
        guard let sections = reply.mapValue else { throw SerfError.malformedReply("stats reply is not a map") }
        var result: [String: [String: String]] = [:]
        for (key, _) in sections {
            guard let key = key.stringValue else { continue }
            result[key] = try SerfFields(reply, "stats").stringMap(key)
        }
        return result
    }

    /// The agent's own node name, which `members` does not single out.
    public func localNodeName() async throws -> String {
        guard let name = try await stats()["agent"]?["name"] else {
            throw SerfError.malformedReply("stats reply has no agent.name")
        }
        return name
    }

    /// Broadcasts a user event. Keep name + payload under about 450 bytes.
    public func userEvent(name: String, payload: [UInt8], coalesce: Bool = false) async throws {
        try await call(.event, ["Name": .string(name), "Payload": .binary(payload), "Coalesce": .bool(coalesce)])
    }

    /// Leaves the cluster gracefully; the agent then shuts down.
    public func leave() async throws {
        try await call(.leave)
    }

    /// Starts a query and returns its records as they arrive: acks, responses, then `done` at the
    /// deadline, after which the sequence ends. Throws at once if the agent refuses the query
    /// (e.g. `query exceeds limit of 1024 bytes`). Empty-`From` records are skipped.
    public func query(_ request: SerfQueryRequest) async throws -> AsyncThrowingStream<SerfQueryEvent, any Error> {
        guard request.timeoutNanoseconds != nil else { throw SerfError.invalidRequest("negative query timeout") }
        let seq = allocateSeq()
        let (events, sink) = AsyncThrowingStream.makeStream(of: SerfQueryEvent.self)
        // A query cannot be cancelled on the agent; an abandoned one is read to its end and dropped.
        sink.onTermination = { [weak self] _ in self?.removeSinks(seq) }
        try await accept(.query, request.body, seq: seq, sink: sink) { $0.querySinks[seq] = sink }
        return events
    }

    /// `query` with its fields spelt out.
    public func query(
        name: String, payload: [UInt8], timeout: Duration? = nil, filterNodes: [String] = [],
        filterTags: [String: String] = [:], requestAck: Bool = false
    ) async throws -> AsyncThrowingStream<SerfQueryEvent, any Error> {
        try await query(
            SerfQueryRequest(
                name: name, payload: payload, timeout: timeout, filterNodes: filterNodes, filterTags: filterTags,
                requestAck: requestAck))
    }

    /// Opens an event stream. `type` is a comma list of filters (`SerfEventFilter`); the agent
    /// rejects unknown ones with `Invalid event filter`.
    public func stream(type: String) async throws -> SerfEventStream {
        let seq = allocateSeq()
        let (events, sink) = AsyncThrowingStream.makeStream(of: SerfStreamEvent.self)
        sink.onTermination = { [weak self] termination in
            guard case .cancelled = termination, let self else { return }
            Task { try? await self.stop(seq) }
        }
        try await accept(.stream, ["Type": .string(type)], seq: seq, sink: sink) { $0.streamSinks[seq] = sink }
        return SerfEventStream(seq: seq, events: events)
    }

    /// Stops a stream (or monitor) started on this connection. Records already in flight are dropped.
    public func stop(_ seq: UInt64) async throws {
        let sink = state.withLock { s in
            s.demux.retire(seq: seq)
            return s.streamSinks.removeValue(forKey: seq)
        }
        sink?.finish()
        try await call(.stop, ["Stop": .uint(seq)])
    }

    /// Answers query `id` received on this connection's stream. Prefer `SerfIncomingQuery.respond`.
    public func respond(id: UInt64, payload: [UInt8]) async throws {
        try await call(.respond, ["ID": .uint(id), "Payload": .binary(payload)])
    }

    // MARK: - Lifecycle

    /// Closes the connection; pending calls and streams fail with `connectionClosed`.
    public func close() async {
        let channel = state.withLock { $0.channel }
        fail(.connectionClosed("closed by the client"))
        try? await channel?.close()
    }

    /// Suspends until the connection is gone; returns why.
    public func waitUntilClosed() async -> SerfError {
        await withCheckedContinuation { continuation in
            let failure = state.withLock { s in
                if s.failure == nil { s.closeWaiters.append(continuation) }
                return s.failure
            }
            if let failure { continuation.resume(returning: failure) }
        }
    }

    /// Whether the connection has ended (it never comes back: open a new client).
    public var isClosed: Bool { state.withLock { $0.failure != nil } }

    /// Seqs still waiting for something (tests use it to check nothing leaks).
    var outstandingSeqs: Int { state.withLock { $0.demux.outstanding } }

    // MARK: - Sending

    private func allocateSeq() -> UInt64 { nextSeq.add(1, ordering: .relaxed).oldValue }

    /// Sends a plain command and returns its body, if the command has one.
    @discardableResult
    private func call(_ command: SerfCommand, _ body: MsgPackValue? = nil) async throws -> MsgPackValue? {
        let frame = try await send(command, body, seq: allocateSeq()) { _ in }
        guard case .reply(_, let error, let replyBody) = frame else {
            throw SerfError.protocolViolation("\(command.rawValue) got a stream frame")
        }
        if !error.isEmpty { throw SerfError.agent(command: command.rawValue, message: error) }
        return replyBody
    }

    private func body(of command: SerfCommand, _ body: MsgPackValue? = nil) async throws -> MsgPackValue {
        guard let reply = try await call(command, body) else {
            throw SerfError.malformedReply("\(command.rawValue) reply has no body")
        }
        return reply
    }

    /// Sends a record-producing command and waits for the agent to accept it.
    private func accept<E>(
        _ command: SerfCommand, _ body: MsgPackValue, seq: UInt64,
        sink: AsyncThrowingStream<E, any Error>.Continuation, register: @escaping (inout State) -> Void
    ) async throws {
        do {
            let frame = try await send(command, body, seq: seq, register: register)
            guard case .accepted(_, let error) = frame else {
                throw SerfError.protocolViolation("\(command.rawValue) got a plain reply")
            }
            if !error.isEmpty { throw SerfError.agent(command: command.rawValue, message: error) }
        } catch {
            removeSinks(seq)
            sink.finish(throwing: error)
            throw error
        }
    }

    private func send(
        _ command: SerfCommand, _ body: MsgPackValue?, seq: UInt64, register: @escaping (inout State) -> Void
    ) async throws -> SerfDemultiplexer.Frame {
        let bytes = SerfRequest.encode(command, seq: seq, body: body)
        return try await withCheckedThrowingContinuation { (waiter: Waiter) in
            let channel: Result<any Channel, SerfError> = state.withLock { s in
                if let failure = s.failure { return .failure(failure) }
                guard let channel = s.channel else { return .failure(.notConnected) }
                // Registered before the write, so the reply can never beat its expectation.
                s.demux.expect(seq: seq, command: command)
                s.waiters[seq] = waiter
                register(&s)
                return .success(channel)
            }
            switch channel {
            case .failure(let error):
                waiter.resume(throwing: error)
            case .success(let channel):
                channel.writeAndFlush(ByteBuffer(bytes: bytes)).whenFailure { [weak self] error in
                    self?.fail(.connectionClosed("write to \(command.rawValue) failed: \(error)"))
                }
                let timeout = TimeAmount.nanoseconds(requestTimeout.wholeNanoseconds ?? 0)
                channel.eventLoop.scheduleTask(in: timeout) { [weak self] in self?.expire(seq, command) }
            }
        }
    }

    /// Fails a call whose reply is late. The Seq stays expected so the late reply is still framed
    /// correctly (and then dropped).
    private func expire(_ seq: UInt64, _ command: SerfCommand) {
        state.withLock { $0.waiters.removeValue(forKey: seq) }?.resume(throwing: SerfError.timeout(command: command.rawValue))
    }

    private func removeSinks(_ seq: UInt64) {
        state.withLock { s in
            s.querySinks[seq] = nil
            s.streamSinks[seq] = nil
        }
    }

    // MARK: - Receiving (called on the event loop)

    private enum Delivery {
        case resume(Waiter?, SerfDemultiplexer.Frame)
        /// Accepted after its caller gave up waiting: nobody will read it, so stop it.
        case orphanedStream(UInt64)
        case queryRecord(QuerySink?, MsgPackValue, last: Bool, seq: UInt64)
        case streamRecord(StreamSink?, MsgPackValue, seq: UInt64)
        case none
    }

    func receive(_ value: MsgPackValue) throws(SerfError) {
        let delivery: Delivery = try state.withLock { (s) throws(SerfError) -> Delivery in
            guard let frame = try s.demux.receive(value) else { return .none }
            switch frame {
            case .reply(let seq, _, _):
                return .resume(s.waiters.removeValue(forKey: seq), frame)
            case .accepted(let seq, let error):
                guard let waiter = s.waiters.removeValue(forKey: seq) else {
                    return error.isEmpty ? .orphanedStream(seq) : .none
                }
                return .resume(waiter, frame)
            case .record(let seq, let body, let last):
                if let sink = s.querySinks[seq] {
                    if last { s.querySinks[seq] = nil }
                    return .queryRecord(sink, body, last: last, seq: seq)
                }
                return .streamRecord(s.streamSinks[seq], body, seq: seq)
            }
        }
        switch delivery {
        case .none:
            break
        case .resume(let waiter, let frame):
            waiter?.resume(returning: frame)
        case .orphanedStream(let seq):
            Task { try? await self.stop(seq) }
        case .queryRecord(let sink, let body, let last, let seq):
            do {
                if let event = try SerfQueryEvent.decode(record: body) { sink?.yield(event) }
                if last { sink?.finish() }
            } catch {
                removeSinks(seq)
                sink?.finish(throwing: error)
            }
        case .streamRecord(let sink, let body, let seq):
            guard let sink else { return }
            do {
                var event = try SerfStreamEvent.decode(record: body)
                if case .query(var query) = event {
                    query.responder = self
                    event = .query(query)
                }
                sink.yield(event)
            } catch {
                // One undecodable record ends that stream, not the connection: framing is intact.
                removeSinks(seq)
                state.withLock { $0.demux.retire(seq: seq) }
                sink.finish(throwing: error)
            }
        }
    }

    /// Ends the connection and everything waiting on it. The first reason wins.
    func fail(_ reason: SerfError) {
        let taken = state.withLock { s -> (State, (any Channel)?)? in
            guard s.failure == nil else { return nil }
            s.failure = reason
            let old = s
            s.waiters = [:]
            s.querySinks = [:]
            s.streamSinks = [:]
            s.closeWaiters = []
            s.channel = nil
            return (old, old.channel)
        }
        guard let (old, channel) = taken else { return }
        channel?.close(promise: nil)
        for waiter in old.waiters.values { waiter.resume(throwing: reason) }
        for sink in old.querySinks.values { sink.finish(throwing: reason) }
        for sink in old.streamSinks.values { sink.finish(throwing: reason) }
        for waiter in old.closeWaiters { waiter.resume(returning: reason) }
    }
}
