import Foundation
import KVGossipClient
import Testing
import KVGossipTestSupport

extension AgentTests {
    /// A value written on another host reaches a subscriber through gossip; the reader's side
    /// settles clean, and the writer's side is briefly `pending-push` until its peer acknowledges.
    @Test func aValueSetOnAnotherAgentReachesTheSubscriber() async throws {
        let sandbox = try Sandbox()
        let root = try await sandbox.keygen("root.key")
        let (portA, portB) = (LoopbackPort.free(), LoopbackPort.free())
        let a = try await sandbox.startAgent("A", root: root, peers: [portB], port: portA)
        let b = try await sandbox.startAgent("B", root: root, peers: [portA], port: portB)

        let reader = KVClient(endpoints: [.unix(a.socket)], options: testOptions())
        let writerSide = KVClient(endpoints: [.unix(b.socket)], options: testOptions())
        let sub = try await reader.subscribeKey("/app/db/url")
        let onWriter = try await writerSide.subscribeKey("/app/db/url")
        // Both agents count as synced once B's start-up session with A completed.
        #expect(try await first(sub.dirtinessChanges) { !$0.isDirty } == .synced)
        #expect(sub.value == .absent)
        _ = try await first(onWriter.dirtinessChanges) { !$0.isDirty }
        let writerStates = Recorder(onWriter.dirtinessChanges)

        let set = try await b.cli(["set", "/app/db/url", "postgres://db2"])
        #expect(set.status == 0, "\(set.stderr)")
        let value = try await first(sub.valueChanges) { $0.string == "postgres://db2" }
        #expect(value.record?.chain == ["root"])
        #expect(await eventually { !sub.isDirty })
        #expect(await eventually { writerStates.all.last == .synced })
        #expect(writerStates.all.contains(.agent("pending-push")), "writer side saw \(writerStates.all)")
        #expect(onWriter.value.string == "postgres://db2")

        await reader.close()
        await writerSide.close()
    }

    /// Once the cull delay is over, the client tells the agent: the watch it opened is closed
    /// with `unwatch` (Docs/client.md §Shared interests and the cull delay), so an agent does not
    /// keep watches for a client that lost interest until it answers `busy`.
    @Test func theCullTellsTheAgentToCloseTheWatch() async throws {
        let sandbox = try Sandbox()
        let forgery = Forgery()
        let fake = try FakeAgent(socket: sandbox.path("fake.sock"), root: forgery.cluster, records: [forgery.record("/app/mode", "blue")])
        defer { fake.stop() }
        var options = testOptions(cullDelay: .milliseconds(200))
        options.cluster = forgery.cluster
        let client = KVClient(endpoints: [.unix(fake.socket)], options: options)
        let sub = try await client.subscribeKey("/app/mode")
        #expect(await eventually(.seconds(10)) { sub.value.string == "blue" }, "\(sub.value) \(sub.dirtiness)")
        await sub.unsubscribe()
        #expect(await eventually(.seconds(5)) { await client.statistics.keyInterests == 0 })
        let watch = try #require(fake.requests.first { $0.op == .watch })
        #expect(await eventually(.seconds(5)) { fake.requests.contains { $0.op == .unwatch && $0.id == watch.id } }, "\(fake.requests.map(\.op))")
        await client.close()
    }

    /// Unsubscribing and subscribing again within the cull delay reuses the interest (no new
    /// watch, the value is known at once); after the delay the interest is gone and starts over.
    @Test func theCullDelayKeepsAnInterestForAResubscribe() async throws {
        let sandbox = try Sandbox()
        let root = try await sandbox.keygen("root.key")
        let a = try await sandbox.startAgent("A", root: root)
        #expect(try await a.cli(["set", "/svc/mode", "blue"]).status == 0)
        let client = KVClient(endpoints: [.unix(a.socket)], options: testOptions(cullDelay: .seconds(1)))

        let first1 = try await client.subscribeKey("/svc/mode")
        _ = try await first(first1.valueChanges) { $0.string == "blue" }
        let shared = try await client.subscribeKey("/svc/mode")
        #expect(shared.value.string == "blue", "a second subscriber shares the interest's value")
        #expect(await client.statistics.watchesOpened == 1)

        await first1.unsubscribe()
        await shared.unsubscribe()
        // Streams of a released subscription end at once.
        for await _ in first1.valueChanges { Issue.record("a released subscription still streams") }
        #expect(first1.value.string == "blue", "a released subscription keeps showing what it last saw")

        let again = try await client.subscribeKey("/svc/mode")
        #expect(again.value.string == "blue", "reused without a fetch")
        #expect(!again.isDirty)
        var stats = await client.statistics
        #expect(stats.watchesOpened == 1 && stats.watchesClosed == 0 && stats.keyInterests == 1)

        // Changes keep flowing to the reused interest.
        #expect(try await a.cli(["set", "/svc/mode", "green"]).status == 0)
        _ = try await first(again.valueChanges) { $0.string == "green" }

        await again.unsubscribe()
        #expect(await eventually(.seconds(5)) { await client.statistics.keyInterests == 0 })
        stats = await client.statistics
        #expect(stats.watchesClosed == 1)
        let fresh = try await client.subscribeKey("/svc/mode")
        #expect(await client.statistics.watchesOpened == 2, "after the delay the interest starts over")
        _ = try await first(fresh.valueChanges) { $0.string == "green" }
        await client.close()
    }
}
