import Testing
@testable import KVGossipSerf

/// The per-command body table and the framing of recorded replies.
struct SerfProtocolTests {
    typealias F = SerfFixtures

    @Test func bodyTableMatchesTheMeasuredAgent() {
        let withBody: Set<SerfCommand> = [.members, .membersFiltered, .join, .stats, .getCoordinate, .listKeys, .installKey, .useKey, .removeKey]
        for command in SerfCommand.allCases {
            #expect(command.replyHasBody == withBody.contains(command), "\(command)")
        }
        #expect(Set(SerfCommand.allCases.filter(\.producesRecords)) == [.stream, .monitor, .query])
        #expect(SerfCommand.forceLeave.rawValue == "force-leave" && SerfCommand.membersFiltered.rawValue == "members-filtered")
        // Errors before dispatch are header-only even for commands with a body; others keep the body.
        #expect(!SerfCommand.members.replyCarriesBody(error: "Handshake required"))
        #expect(!SerfCommand.join.replyCarriesBody(error: "Authentication required"))
        #expect(SerfCommand.join.replyCarriesBody(error: "Failed to join: dial tcp"))
        #expect(!SerfCommand.tags.replyCarriesBody(error: ""))
    }

    @Test func requestsUseExactKeysAndMinimalInts() {
        #expect(SerfRequest.encode(.members, seq: 2, body: nil) == [UInt8](hex: "82a7436f6d6d616e64a76d656d62657273a353657102"))
        // The query recorded in Docs/serf-rpc.md §Observed bytes: Timeout 500 ms as ce 1dcd6500, Payload
        // as bin.
        let query = SerfQueryRequest(name: "rawq", payload: Array("abc".utf8), timeout: .milliseconds(500), requestAck: true)
        let expected = [UInt8](
            hex: "87 ab46696c7465724e6f646573 90 aa46696c74657254616773 80 aa5265717565737441636b c3"
                + " ab52656c6179466163746f72 00 a754696d656f7574 ce1dcd6500 a44e616d65 a472617771"
                + " a75061796c6f6164 c403616263")
        #expect(MsgPackEncoder.encode(query.body) == expected)
        #expect(SerfQueryRequest(name: "q", payload: [], timeout: .seconds(-1)).timeoutNanoseconds == nil)
        #expect(SerfQueryRequest(name: "q", payload: [], timeout: nil).timeoutNanoseconds == 0)
        #expect(SerfQueryRequest(name: "q", payload: [], timeout: .seconds(1.5)).timeoutNanoseconds == 1_500_000_000)
    }

    @Test func membersReplyDecodes() throws {
        var demux = SerfDemultiplexer()
        demux.expect(seq: 0, command: .handshake)
        demux.expect(seq: 2, command: .members)
        let longName = String(repeating: "n", count: 40)  // str8 on the wire, as the agent sends it
        let bytes = F.wire([
            F.header(0),
            F.header(2),
            [
                "Members": [
                    F.member("n1"),
                    F.member(longName, addr: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 2], port: 65000, tags: nil),
                    F.member("v6", addr: [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], status: "failed"),
                ]
            ],
        ])
        #expect(bytes.contains(0xd9))
        let frames = try F.frames(bytes, into: &demux)
        #expect(frames.count == 2)
        #expect(frames[0] == .reply(seq: 0, error: "", body: nil))
        guard case .reply(2, "", let body?) = frames[1] else { Issue.record("no members body"); return }
        let members = try SerfMember.list(decoding: body)
        #expect(members.map(\.name) == ["n1", longName, "v6"])
        #expect(members[0] == SerfMember(name: "n1", address: "127.0.0.1", port: 7946, tags: ["kvg": "7001"], status: .alive,
                                         protocolMin: 1, protocolMax: 5, protocolCurrent: 2, delegateMin: 2, delegateMax: 5, delegateCurrent: 5))
        #expect(members[1].address == "10.0.0.2" && members[1].port == 65000 && members[1].tags.isEmpty)
        #expect(members[2].address == "fd00::1" && members[2].status == .failed)
        #expect(demux.outstanding == 0)
    }

    @Test func queryRecordsEndAtDoneAndSkipEmptyFrom() throws {
        var demux = SerfDemultiplexer()
        demux.expect(seq: 7, command: .query)
        let frames = try F.frames(
            F.wire([
                F.header(7),
                F.header(7), F.queryRecord("ack", from: "n1"),
                F.header(7), F.queryRecord("response", from: "n2", payload: Array("hi".utf8)),
                F.header(7), F.queryRecord("response", from: ""),  // hashicorp/serf#408
                F.header(7), F.queryRecord("response", from: "n3"),  // empty payload comes as nil
                F.header(7), F.queryRecord("done", from: ""),
            ]), into: &demux)
        #expect(frames.first == .accepted(seq: 7, error: ""))
        let events = try frames.dropFirst().map { frame -> SerfQueryEvent? in
            guard case .record(7, let body, _) = frame else { throw SerfError.protocolViolation("not a record") }
            return try SerfQueryEvent.decode(record: body)
        }
        #expect(events == [.ack(from: "n1"), .response(from: "n2", payload: Array("hi".utf8)), nil, .response(from: "n3", payload: []), .done])
        guard case .record(_, _, let last) = frames.last else { return }
        #expect(last)
        #expect(demux.outstanding == 0)
    }

    @Test func refusedQueryHasNoRecords() throws {
        var demux = SerfDemultiplexer()
        demux.expect(seq: 3, command: .query)
        let frames = try F.frames(F.wire([F.header(3, "query exceeds limit of 1024 bytes")]), into: &demux)
        #expect(frames == [.accepted(seq: 3, error: "query exceeds limit of 1024 bytes")])
        #expect(demux.outstanding == 0)
    }

    @Test func streamRecordsInterleaveWithRepliesAndStopRetires() throws {
        var demux = SerfDemultiplexer()
        demux.expect(seq: 1, command: .stream)
        demux.expect(seq: 2, command: .join)
        demux.expect(seq: 3, command: .members)
        let queryRecord: MsgPackValue = ["Event": "query", "ID": 1, "LTime": 9, "Name": "kvgossip-hash", "Payload": .binary([1, 2])]
        let frames = try F.frames(
            F.wire([
                F.header(1),
                F.header(1), queryRecord,
                F.header(2, "Failed to join"), ["Num": 0],  // join has a body even on error
                F.header(3, "Authentication required"),  // pre-dispatch: no body
                F.header(1), ["Event": "member-join", "Members": [F.member("n2")]],
            ]), into: &demux)
        #expect(frames.count == 5)
        #expect(frames[2] == .reply(seq: 2, error: "Failed to join", body: ["Num": 0]))
        #expect(frames[3] == .reply(seq: 3, error: "Authentication required", body: nil))
        guard case .record(1, let q, false) = frames[1], case .record(1, let m, false) = frames[4] else {
            Issue.record("records missing"); return
        }
        #expect(try SerfStreamEvent.decode(record: q) == .query(SerfIncomingQuery(id: 1, name: "kvgossip-hash", payload: [1, 2], lamportTime: 9)))
        guard case .member(let event) = try SerfStreamEvent.decode(record: m) else { Issue.record("not a member event"); return }
        #expect(event.kind == .join && event.members.map(\.name) == ["n2"])

        demux.retire(seq: 1)
        let late = try F.frames(F.wire([F.header(1), ["Event": "member-leave", "Members": []]]), into: &demux)
        #expect(late.isEmpty)  // read whole and dropped: the framing stays intact
    }

    @Test func unknownSeqAndBadHeadersAreProtocolViolations() {
        for object: MsgPackValue in [F.header(99), ["Error": ""], .array([]), ["Seq": 1, "Error": 5]] {
            var demux = SerfDemultiplexer()
            demux.expect(seq: 1, command: .members)
            #expect(throws: SerfError.self) { _ = try demux.receive(object) }
        }
    }

    @Test func userEventsAndMalformedRecords() throws {
        let user = try SerfStreamEvent.decode(record: ["Event": "user", "LTime": 3, "Name": "kv", "Payload": nil, "Coalesce": false])
        #expect(user == .user(SerfUserEvent(name: "kv", payload: [], lamportTime: 3, coalesce: false)))
        #expect(throws: SerfError.self) { try SerfStreamEvent.decode(record: ["Event": "bogus"]) }
        #expect(throws: SerfError.self) { try SerfStreamEvent.decode(record: ["Event": "query", "ID": -1, "Name": "x", "LTime": 1]) }
        #expect(throws: SerfError.self) { try SerfQueryEvent.decode(record: ["Type": "nack", "From": "n1"]) }
        #expect(throws: SerfError.self) { try SerfMember(decoding: F.member("x", addr: [1, 2, 3])) }
        #expect(throws: SerfError.self) { try SerfMember(decoding: F.member("x", port: 70000)) }
    }

    @Test(arguments: [
        ([UInt8]([192, 168, 1, 20]), "192.168.1.20"),
        ([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1], "127.0.0.1"),
        ([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], "2001:db8::1"),
        ([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1], "2001:db8:0:1::1:1"),
        ([0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 1, 0, 1, 0, 1, 0, 1], "2001:db8:1:0:1:1:1:1"),
        ([UInt8](repeating: 0, count: 16), "::"),
        ([UInt8](repeating: 0, count: 15) + [1], "::1"),
    ])
    func addressText(bytes: [UInt8], text: String) throws {
        #expect(try IPAddressText.format(bytes, context: "t") == text)
    }

    @Test func rpcAddressParsing() {
        #expect(SerfRPCAddress(parsing: "127.0.0.1:7373") == SerfRPCAddress(port: 7373))
        #expect(SerfRPCAddress(parsing: "[::1]:7373") == SerfRPCAddress(host: "::1", port: 7373))
        #expect(SerfRPCAddress(parsing: "[::1]:7373")?.description == "[::1]:7373")
        #expect(SerfRPCAddress(parsing: "host:0") == nil && SerfRPCAddress(parsing: "7373") == nil)
    }

    @Test func backoffGrowsToItsCap() {
        let backoff = SerfBackoff(initial: .milliseconds(100), maximum: .seconds(1), jitter: 0)
        #expect((0 ..< 6).map { backoff.delay(attempt: $0) } == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1), .seconds(1)])
        #expect(backoff.delay(attempt: 10_000) == .seconds(1))
        let jittered = SerfBackoff(initial: .seconds(1), maximum: .seconds(1), jitter: 0.2).delay(attempt: 0)
        #expect(jittered >= .milliseconds(800) && jittered <= .seconds(1))
    }
}
