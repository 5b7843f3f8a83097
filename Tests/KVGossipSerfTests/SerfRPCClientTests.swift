import NIOCore
import NIOPosix
import Synchronization
import Testing
@testable import KVGossipSerf

/// The client against a scripted fake agent: what it sends, how it routes records, and that
/// garbage is always an error, never a crash.
struct SerfRPCClientTests {
    typealias F = SerfFixtures
    private let handshakeOK = MsgPackEncoder.encode(F.header(0))

    @Test func garbageFromTheServerIsAnError() async throws {
        // Not msgpack at all.
        await #expect(throws: SerfError.protocolViolation(MsgPackError.reservedByte(offset: 0).description)) {
            try await ScriptedServer.connect(script: [[0xc1]])
        }
        // A header for a Seq nobody asked about: the framing is lost, so the connection ends.
        let unknownSeq = try await ScriptedServer.connect(script: [handshakeOK, MsgPackEncoder.encode(F.header(77))])
        await #expect(throws: SerfError.protocolViolation("reply for Seq 77, which has no request outstanding")) {
            try await unknownSeq.client.members()
        }
        #expect(unknownSeq.client.isClosed)
        // A header announcing a 4 GiB string is refused before any of it arrives.
        let huge = try await ScriptedServer.connect(script: [handshakeOK, [0xdb, 0xff, 0xff, 0xff, 0xff]])
        await #expect(throws: SerfError.self) { try await huge.client.members() }
        // A well-formed reply of the wrong shape fails the call, not the connection.
        let wrongShape = try await ScriptedServer.connect(script: [handshakeOK, F.wire([F.header(1), ["Members": 5]])])
        await #expect(throws: SerfError.malformedReply("members reply: Members is not an array")) {
            try await wrongShape.client.members()
        }
        #expect(!wrongShape.client.isClosed)
        // The agent's own refusal, and a server that hangs up.
        await #expect(throws: SerfError.agent(command: "handshake", message: "Unsupported IPC version")) {
            try await ScriptedServer.connect(script: [MsgPackEncoder.encode(F.header(0, "Unsupported IPC version"))])
        }
        await #expect(throws: SerfError.self) { try await ScriptedServer.connect(script: [nil]) }
        // Silence: the request times out instead of hanging.
        let silent = try await ScriptedServer.connect(script: [handshakeOK], requestTimeout: .milliseconds(200))
        await #expect(throws: SerfError.timeout(command: "members")) { try await silent.client.members() }
        for server in [unknownSeq, huge, wrongShape, silent] { await server.client.close() }
    }

    @Test func queryRecordsArriveInOrderAndEndAtDone() async throws {
        let records = F.wire([
            F.header(1),
            F.header(1), F.queryRecord("ack", from: "a"),
            F.header(1), F.queryRecord("response", from: "b", payload: [9]),
            F.header(1), F.queryRecord("ack", from: ""),  // spurious, skipped
            F.header(1), F.queryRecord("done", from: ""),
        ])
        let fake = try await ScriptedServer.connect(script: [handshakeOK, records, F.wire([F.header(2), ["Members": []]])])
        let stream = try await fake.client.query(name: "q", payload: [1, 2], timeout: .milliseconds(250), filterTags: ["kvg": ".*"])
        var events: [SerfQueryEvent] = []
        for try await event in stream { events.append(event) }
        #expect(events == [.ack(from: "a"), .response(from: "b", payload: [9]), .done])
        #expect(try await fake.client.members().isEmpty)
        #expect(fake.client.outstandingSeqs == 0)

        let sent = try fake.received()
        #expect(sent[2] == ["Command": "query", "Seq": 1])
        #expect(sent[3]["Timeout"] == .uint(250_000_000) && sent[3]["FilterTags"] == ["kvg": ".*"])
        #expect(sent[3]["Payload"] == .binary([1, 2]))
        #expect(sent[4] == ["Command": "members", "Seq": 2] && sent.count == 5)  // members has no body
        await fake.client.close()
    }

    @Test func aQueryIsAnsweredOnTheConnectionThatReceivedIt() async throws {
        let queryRecord: MsgPackValue = ["Event": "query", "ID": 5, "LTime": 3, "Name": "kvgossip-hash", "Payload": .binary([7])]
        let fake = try await ScriptedServer.connect(script: [
            handshakeOK, F.wire([F.header(1), F.header(1), queryRecord]), MsgPackEncoder.encode(F.header(2)),
            MsgPackEncoder.encode(F.header(3)),
        ])
        let stream = try await fake.client.stream(type: SerfEventFilter.queries(named: "kvgossip-hash"))
        var iterator = stream.makeAsyncIterator()
        guard case .query(let query)? = try await iterator.next() else {
            Issue.record("no query")
            return
        }
        #expect(query == SerfIncomingQuery(id: 5, name: "kvgossip-hash", payload: [7], lamportTime: 3))
        try await query.respond([8, 8])
        try await fake.client.stop(stream.seq)
        #expect(try await iterator.next() == nil)  // stopping ends the sequence

        let sent = try fake.received()
        #expect(sent[3] == ["Type": "query:kvgossip-hash"])
        #expect(sent[4] == ["Command": "respond", "Seq": 2] && sent[5] == ["ID": 5, "Payload": .binary([8, 8])])
        #expect(sent[6] == ["Command": "stop", "Seq": 3] && sent[7] == ["Stop": 1])
        await fake.client.close()
        // A query kept past its connection cannot be answered elsewhere.
        await #expect(throws: SerfError.self) { try await query.respond([1]) }
    }

    @Test func closingFailsEverythingPending() async throws {
        let fake = try await ScriptedServer.connect(script: [handshakeOK, MsgPackEncoder.encode(F.header(1))])
        let stream = try await fake.client.stream(type: SerfEventFilter.memberEvents)
        async let waited = fake.client.waitUntilClosed()
        await fake.client.close()
        #expect(await waited == .connectionClosed("closed by the client"))
        await #expect(throws: SerfError.connectionClosed("closed by the client")) {
            for try await _ in stream {}
        }
    }
}

/// A fake agent: answers the n-th read with the n-th scripted bytes (nil hangs up), then stays
/// quiet, and keeps what the client sent.
struct ScriptedServer {
    let client: SerfRPCClient
    private let inbound: Inbound

    final class Inbound: Sendable {
        let bytes = Mutex<[UInt8]>([])
    }

    /// Everything the client sent, as msgpack objects.
    func received() throws -> [MsgPackValue] {
        try MsgPackDecoder().decodeAll(inbound.bytes.withLock { $0 }).values
    }

    static func connect(script: [[UInt8]?], requestTimeout: Duration = .seconds(5)) async throws -> ScriptedServer {
        let inbound = Inbound()
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ScriptHandler(script: script, inbound: inbound))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { server.close(promise: nil) }
        let client = try await SerfRPCClient.connect(to: SerfRPCAddress(port: server.localAddress!.port!), requestTimeout: requestTimeout)
        return ScriptedServer(client: client, inbound: inbound)
    }
}

private final class ScriptHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private var script: [[UInt8]?]
    private let inbound: ScriptedServer.Inbound

    init(script: [[UInt8]?], inbound: ScriptedServer.Inbound) {
        self.script = script
        self.inbound = inbound
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        inbound.bytes.withLock { $0 += buffer.readableBytesView }
        guard !script.isEmpty else { return }
        guard let reply = script.removeFirst() else {
            context.close(promise: nil)
            return
        }
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: reply)), promise: nil)
    }
}
