import Foundation
import KVGossipCore
import KVGossipTestSupport
import KVGossipTestTraits
import Testing

/// Control connections earn their slot (Docs/operations.md §Control API limits): a frame that
/// stalls is closed, connections and watches past their caps are refused with a reason, and a
/// watcher that stops reading falls behind instead of growing the agent's memory.
@Suite(.serialized, .integration) struct ControlLimitsTests {
    /// An agent whose node key is the root's, with these settings in its config file.
    static func agent(_ cli: CLIProcess, settings: String, extraArgs: [String] = []) throws -> AgentProcess {
        let root = try cli.keygen("root.key")
        try "{\(settings)}".write(toFile: cli.path("agent.json"), atomically: true, encoding: .utf8)
        return try AgentProcess(cli: cli, root: root, extraArgs: ["--key", "root.key", "--config", cli.path("agent.json")] + extraArgs)
    }

    static let status = #"{"id":1,"op":"status"}"#

    static func json(_ frame: [UInt8]?) -> [String: Any]? {
        frame.flatMap { try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any] }
    }

    /// Asks `status` on `socket`; true when the agent answered ok.
    static func answers(_ socket: borrowing RawSocket) -> Bool {
        socket.sendFrame(status) && json(socket.readFrame())?["ok"] as? Bool == true
    }

    @Test func aFrameThatStallsIsClosedButAnIdleConnectionIsNot() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let agent = try Self.agent(cli, settings: #""controlFrameSeconds": 1"#)
        guard let idle = RawSocket(unixPath: agent.socket, timeout: 30) else { throw CLIError("cannot connect") }
        let served = Self.answers(idle)
        #expect(served)

        // A length saying 100 bytes, then 10 of them, then nothing.
        guard let stalled = RawSocket(unixPath: agent.socket, timeout: 30) else { throw CLIError("cannot connect") }
        let sent = stalled.send([0, 0, 0, 100] + Array(repeating: UInt8(ascii: " "), count: 10))
        let closed = stalled.readUntilClosed() != nil
        #expect(sent && closed, "the agent closed the stalled connection (else still open after 30 s)")

        // The idle one was quiet all that time, between frames: it is still served.
        let stillServed = Self.answers(idle)
        #expect(stillServed)
        #expect(agent.log.contains("malformed") == false)
    }

    /// Bytes that are not a request of the control API (not JSON, JSON of an unknown operation,
    /// not UTF-8) get one `malformed` failure with id 0, and that connection alone is closed
    /// (Docs/protocol.md §Control API (Unix socket, default `/run/kvgossip/control.sock`, mode 0660; optional TCP)).
    @Test func aMalformedRequestClosesOnlyItsConnection() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let agent = try Self.agent(cli, settings: "")
        guard let bystander = RawSocket(unixPath: agent.socket, timeout: 30) else { throw CLIError("cannot connect") }
        #expect(Self.answers(bystander))
        for bad in [Array("status please".utf8), Array(#"{"id":7,"op":"frobnicate"}"#.utf8), [0xFF, 0xFE, 0x7B]] {
            guard let s = RawSocket(unixPath: agent.socket, timeout: 30) else { throw CLIError("cannot connect") }
            s.sendFrame(bad)
            let answer = Self.json(s.readFrame())
            #expect(answer?["id"] as? Int == 0 && answer?["ok"] as? Bool == false, "answer to \(bad): \(String(describing: answer))")
            #expect((answer?["error"] as? [String: Any])?["reason"] as? String == "malformed")
            let closed = s.readUntilClosed() != nil
            #expect(closed, "the agent closed the connection that sent \(bad)")
        }
        // The other connection, open all along, is still served, and so is a new one.
        #expect(Self.answers(bystander))
        guard let later = RawSocket(unixPath: agent.socket, timeout: 30) else { throw CLIError("cannot connect") }
        #expect(Self.answers(later))
    }

    @Test func connectionsPastTheCapsAreRefusedWithAReason() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let port = LoopbackPort.free()
        let agent = try Self.agent(
            cli, settings: #""controlConnections": 3, "controlConnectionsPerAddress": 2"#, extraArgs: ["--control-listen", "127.0.0.1:\(port)"])

        // TCP: two admitted clients from 127.0.0.1 are served, the third is told why (sealed, once
        // its handshake is over) and closed. (One at a time: connections made at once may be
        // admitted in any order.)
        let rootKey = try SecretKeyFile.parse(try String(contentsOfFile: cli.path("root.key"), encoding: .utf8), mode: 0o600, path: "root.key")
        func tcpClient() throws -> LinkSpeaker {
            try LinkSpeaker(port: port, cluster: rootKey.publicKey, credentials: LinkSpeaker.credentials(rootKey, name: "limits"), service: .control)
        }
        func answersSealed(_ client: LinkSpeaker) -> Bool {
            client.sendSealed(Array(Self.status.utf8)) && Self.json(client.receiveSealed())?["ok"] as? Bool == true
        }
        let t1 = try tcpClient()
        let firstServed = answersSealed(t1)
        let t2 = try tcpClient()
        let secondServed = answersSealed(t2)
        #expect(firstServed && secondServed, "\(agent.log)")
        let t3 = try tcpClient()
        let refusal = Self.json(t3.receiveSealed())
        let error = refusal?["error"] as? [String: Any]
        #expect(refusal?["id"] as? Int == 0 && error?["reason"] as? String == "busy", "\(String(describing: refusal))")
        #expect((error?["message"] as? String)?.contains("from 127.0.0.1") == true)
        let refusedClosed = t3.socket.readUntilClosed() != nil
        #expect(refusedClosed)
        let viaTCP = try cli.run(["status", "--control", "127.0.0.1:\(port)", "--control-key", "root.key", "--root", rootKey.publicKey.text])
        #expect(viaTCP.status != 0 && viaTCP.stderr.contains("busy: ") && viaTCP.stderr.contains("from 127.0.0.1"), "\(viaTCP.stderr)")

        // The Unix socket has its own count: three held, the fourth refused.
        guard let u1 = RawSocket(unixPath: agent.socket) else { throw CLIError("cannot connect to the socket") }
        var served = Self.answers(u1)
        guard let u2 = RawSocket(unixPath: agent.socket) else { throw CLIError("cannot connect to the socket") }
        served = Self.answers(u2) && served
        guard let u3 = RawSocket(unixPath: agent.socket) else { throw CLIError("cannot connect to the socket") }
        served = Self.answers(u3) && served
        #expect(served)
        let refused = try agent.run(["status"])
        #expect(refused.status != 0 && refused.stderr.contains("busy: this agent already serves 3 control connections on its Unix socket"), "\(refused.stderr)")
        _ = consume u3
        #expect(Readiness.wait { (try? agent.run(["status"]).status) == 0 }, "a freed slot is served again")
        let heldServed = Self.answers(u1) && Self.answers(u2) && answersSealed(t1) && answersSealed(t2)
        #expect(heldServed, "the held connections were served all along")
    }

    @Test func watchesPastThePerConnectionCapAreRefused() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let agent = try Self.agent(cli, settings: #""controlWatchesPerConnection": 3"#)
        guard let s = RawSocket(unixPath: agent.socket, timeout: 30) else { throw CLIError("cannot connect") }
        for id in 1...4 { s.sendFrame(#"{"id":\#(id),"op":"watch","key":"/w/\#(id)"}"#) }
        var answers: [Int: [String: Any]] = [:]
        while answers.count < 4, let answer = Self.json(s.readFrame()), let id = answer["id"] as? Int { answers[id] = answer }
        for id in 1...3 { #expect((answers[id]?["event"] as? [String: Any])?["kind"] as? String == "initial", "watch \(id)") }
        #expect((answers[4]?["error"] as? [String: Any])?["reason"] as? String == "busy", "\(String(describing: answers[4]))")

        // Closing one makes room for another.
        s.sendFrame(#"{"id":1,"op":"unwatch"}"#)
        s.sendFrame(#"{"id":5,"op":"watch","key":"/w/5"}"#)
        var fifth: [String: Any]?
        while fifth == nil, let answer = Self.json(s.readFrame()) {
            if answer["id"] as? Int == 5 { fifth = answer }
        }
        #expect((fifth?["event"] as? [String: Any])?["kind"] as? String == "initial", "\(String(describing: fifth))")
    }

    /// `controlWatches` bounds the watches of a whole transport, whichever connections hold
    /// them: with 3 allowed, two connections holding two and one, a fourth is refused `busy` on
    /// either (Docs/operations.md §Control API limits).
    @Test func watchesPastTheTransportCapAreRefused() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let agent = try Self.agent(cli, settings: #""controlWatches": 3"#)
        guard let a = RawSocket(unixPath: agent.socket, timeout: 30), let b = RawSocket(unixPath: agent.socket, timeout: 30) else {
            throw CLIError("cannot connect")
        }
        func watch(_ socket: RawSocket, _ id: Int) -> [String: Any]? {
            socket.sendFrame(#"{"id":\#(id),"op":"watch","key":"/w/\#(id)"}"#)
            return Self.json(socket.readFrame())
        }
        for (socket, id) in [(a, 1), (a, 2), (b, 3)] {
            #expect((watch(socket, id)?["event"] as? [String: Any])?["kind"] as? String == "initial", "watch \(id)")
        }
        for (socket, id) in [(a, 4), (b, 5)] {
            let refused = watch(socket, id)
            #expect((refused?["error"] as? [String: Any])?["reason"] as? String == "busy", "watch \(id): \(String(describing: refused))")
        }
    }

    /// A watcher stops reading while 600 values of 128 KiB (75 MiB) are written under its prefix.
    /// The agent keeps at most 64 of them for it (8 MiB), then drops them and tells it, when it
    /// reads again, that it fell behind, followed by the current values. The agent's heap grows
    /// by far less than what was written.
    @Test func aWatcherThatStopsReadingFallsBehindInBoundedMemory() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        // History off: kept here, the replaced 128 KiB values (up to the 64 MiB budget) pass through
        // SQLite's page cache, which grows to its own cap (cache_size) whatever a watcher does;
        // this test measures what the watch backlog costs.
        let agent = try Self.agent(cli, settings: #""controlWatchBacklog": 64, "controlConnectionBacklog": 128, "historyVersions": 0"#)
        guard let watcher = RawSocket(unixPath: agent.socket, timeout: 60), let writer = RawSocket(unixPath: agent.socket, timeout: 60) else {
            throw CLIError("cannot connect")
        }
        watcher.sendFrame(#"{"id":1,"op":"watch","prefix":"/slow"}"#)
        let opened = Self.json(watcher.readFrame())?["event"] != nil
        #expect(opened, "the watch is open")
        let before = ProcessMemory.anonymous(agent.pid)

        var latest: [String: String] = [:]
        for i in 0..<600 {
            let key = "/slow/k\(i % 50)"
            let value = (Data("\(i):".utf8) + Data(repeating: UInt8(i % 251), count: 128 << 10)).base64EncodedString()
            latest[key] = value
            writer.sendFrame(#"{"id":\#(i + 2),"op":"mint","key":"\#(key)","value":"\#(value)"}"#)
            guard Self.json(writer.readFrame())?["ok"] as? Bool == true else {
                Issue.record("mint \(i) failed")
                return
            }
        }
        let after = ProcessMemory.anonymous(agent.pid)
        print("agent heap (RssAnon) before the writes \(before) MiB, after \(after) MiB, with the watcher not reading")

        // Reading again: some changes that were already on their way, then the fall, then the current values.
        var fell = false
        var current: [String: String] = [:]
        while let answer = Self.json(watcher.readFrame()), let event = answer["event"] as? [String: Any] {
            if event["kind"] as? String == "fell-behind" { fell = true }
            guard fell, event["kind"] as? String == "initial" else { continue }
            for record in event["records"] as? [[String: Any]] ?? [] {
                if let key = record["key"] as? String { current[key] = record["value"] as? String }
            }
            if event["more"] as? Bool != true { break }
        }
        #expect(fell, "the watcher was told it fell behind")
        let complete = current == latest
        #expect(complete, "after the fall it got every current value (\(current.count) of \(latest.count) keys)")
        #expect(after - before < 40, "the agent's heap grew by \(after - before) MiB while 75 MiB were written past a stalled watcher")
    }
}
