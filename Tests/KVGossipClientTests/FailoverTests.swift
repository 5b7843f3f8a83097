import Foundation
import KVGossipClient
import KVGossipControl
import KVGossipCore
import Testing
import KVGossipTestSupport

extension AgentTests {
    /// Three peered agents; the client knows A then B. A is SIGKILLed: the subscription moves to
    /// B, is dirty until B answers, then clean, and follows a value written on B afterwards.
    ///
    /// B is paused (SIGSTOP) across the kill so the gap is long enough to look at: the client
    /// connects to B's socket (the kernel accepts for a stopped process) but gets no answer until
    /// B resumes. C is there so B's write has a live peer to acknowledge it and B's side settles.
    @Test func aSubscriptionFailsOverToTheNextAgent() async throws {
        let sandbox = try Sandbox()
        let root = try await sandbox.keygen("root.key")
        let ports = (0..<3).map { _ in LoopbackPort.free() }
        let a = try await sandbox.startAgent("A", root: root, peers: [ports[1], ports[2]], port: ports[0])
        let b = try await sandbox.startAgent("B", root: root, peers: [ports[0], ports[2]], port: ports[1])
        let c = try await sandbox.startAgent("C", root: root, peers: [ports[0], ports[1]], port: ports[2])
        _ = c
        #expect(try await a.cli(["set", "/app/db/url", "v1"]).status == 0)
        #expect(await eventually { (try? await b.cli(["get", "/app/db/url"]).stdout) == "v1" })

        let client = KVClient(endpoints: [.unix(a.socket), .unix(b.socket)], options: testOptions())
        let sub = try await client.subscribeKey("/app/db/url")
        _ = try await first(sub.valueChanges) { $0.string == "v1" }
        #expect(await eventually { !sub.isDirty })
        #expect(await client.statistics.endpoint == .unix(a.socket))
        let seen = Recorder(sub.dirtinessChanges)

        b.pause()
        await a.stop(SIGKILL)
        #expect(await eventually { await client.statistics.endpoint == .unix(b.socket) })
        // Connected to B but unanswered: dirty, value kept as last seen.
        #expect(await eventually { sub.dirtiness == .awaitingAnswer }, "\(sub.dirtiness)")
        #expect(sub.isDirty)
        #expect(sub.value.string == "v1", "the last value stays readable while dirty")
        b.resume()

        #expect(await eventually { !sub.isDirty }, "clean once B answered: \(sub.dirtiness)")
        #expect(seen.all.contains(.disconnected) || seen.all.contains(.awaitingAnswer), "dirty during the gap: \(seen.all)")
        #expect(try await b.cli(["set", "/app/db/url", "v2"]).status == 0)
        _ = try await first(sub.valueChanges) { $0.string == "v2" }
        #expect(await eventually { !sub.isDirty }, "settles once C acknowledged B's push: \(sub.dirtiness)")
        let stats = await client.statistics
        #expect(stats.connections == 2 && stats.disconnects == 1)
        await client.close()
    }

    /// With every agent down the client keeps trying (backing off), and a request waits for a
    /// connection up to the call timeout, then fails with `unavailable`.
    @Test func requestsFailWithUnavailableWhenNoAgentAnswers() async throws {
        let sandbox = try Sandbox()
        var options = testOptions()
        options.callTimeout = .milliseconds(600)
        let client = KVClient(endpoints: [.unix(sandbox.path("none-1.sock")), .unix(sandbox.path("none-2.sock"))], options: options)
        let sub = try await client.subscribeKey("/x")
        #expect(sub.dirtiness == .disconnected)
        await #expect(throws: KVClientError.self) { _ = try await client.get("/x") }
        do {
            _ = try await client.get("/x")
        } catch let error as KVClientError {
            #expect(error.reason == .unavailable)
        }
        #expect(await client.statistics.connectFailures >= 2)
        await client.close()
        await #expect(throws: KVClientError(.closed, "the client was closed")) { _ = try await client.subscribeKey("/x") }
    }
}

extension AgentTests {
    /// An agent that stops answering (SIGSTOP) keeps its socket open, so nothing fails by itself:
    /// the heartbeat notices the silence and the client moves to the next agent.
    @Test func aHungAgentIsAbandonedForTheNext() async throws {
        let sandbox = try Sandbox()
        let root = try await sandbox.keygen("root.key")
        let a = try await sandbox.startAgent("A", root: root)
        let b = try await sandbox.startAgent("B", root: root)
        #expect(try await a.cli(["set", "/k", "on A"]).status == 0)
        #expect(try await b.cli(["set", "/k", "on B"]).status == 0)
        var options = testOptions()
        // Short enough to end the test soon, long enough that a busy agent is not taken for a
        // hung one before the pause.
        options.heartbeat = .seconds(1)
        options.callTimeout = .seconds(3)
        let client = KVClient(endpoints: [.unix(a.socket), .unix(b.socket)], options: options)
        let sub = try await client.subscribeKey("/k")
        _ = try await first(sub.valueChanges) { $0.string == "on A" }

        a.pause()
        defer { a.resume() }
        _ = try await first(sub.valueChanges) { $0.string == "on B" }
        #expect(await eventually { !sub.isDirty })
        #expect(await client.statistics.endpoint == .unix(b.socket))
        await client.close()
    }
}

extension AgentTests {
    /// An agent at its connection cap refuses a new connection with `busy` (its connection-level
    /// failure, id 0) and closes it: the client takes that as it takes a lost connection and moves
    /// on to its next endpoint (Docs/operations.md §Control API limits).
    @Test func aBusyAgentIsPassedOverForTheNext() async throws {
        let sandbox = try Sandbox()
        let root = try await sandbox.keygen("root.key")
        let b = try await sandbox.startAgent("B", root: root)
        #expect(try await b.cli(["set", "/k", "on B"]).status == 0)
        let refusal = Array(try JSONEncoder().encode(ControlResponse.failure(0, "busy", "this agent already serves 256 control connections")))
        let busy = try #require(LoopbackServer(unixPath: sandbox.path("busy.sock")) { fd, _ in
            _ = RawSocket(borrowing: fd, timeout: 5).sendFrame(refusal)
        })
        defer { busy.stop() }
        // Without a configured root the first question is B's root (`status`); with one, the get.
        var pinned = testOptions()
        pinned.cluster = try PublicKey(text: root)
        for options in [testOptions(), pinned] {
            let client = KVClient(endpoints: [.unix(sandbox.path("busy.sock")), .unix(b.socket)], options: options)
            #expect(try await client.get("/k").string == "on B")
            #expect(await client.statistics.endpoint == .unix(b.socket))
            await client.close()
        }
    }
}

extension AgentTests {
    /// An agent that dies while serving a request: the request is sent once more on the next
    /// agent when repeating it leaves what the caller asked for (a read, a mint), never a delete
    /// with the node key, whose repetition would answer `not-found` for a delete that happened
    /// (Docs/client.md §Endpoints and failover).
    @Test func aRequestCutOffIsRepeatedOnTheNextAgentOnlyWhenThatIsSafe() async throws {
        let sandbox = try Sandbox()
        let root = try await sandbox.keygen("root.key")
        let b = try await sandbox.startAgent("B", root: root)
        #expect(try await b.cli(["set", "/k", "on B"]).status == 0)
        let dying = try FakeAgent(socket: sandbox.path("dying.sock"), root: try PublicKey(text: root), records: [])
        defer { dying.stop() }
        dying.hangsUpOn.withLock { $0 = [.get, .mint, .delete] }
        func client() -> KVClient { KVClient(endpoints: [.unix(dying.socket), .unix(b.socket)], options: testOptions()) }

        let reader = client()
        #expect(try await reader.get("/k").string == "on B")
        await reader.close()
        let minter = client()
        _ = try await minter.mint("/m", value: Data("minted".utf8))
        await minter.close()
        #expect(try await b.cli(["get", "/m"]).stdout == "minted")

        let remover = client()
        await #expect(throws: KVClientError.self) { try await remover.remove("/k") }
        await remover.close()
        #expect(try await b.cli(["get", "/k"]).stdout == "on B", "the delete was not repeated on B")
        let cutOff = dying.requests.map(\.op).filter { $0 != .status }
        #expect(cutOff == [.get, .mint, .delete], "each request reached the dying agent first: \(cutOff)")
    }
}
