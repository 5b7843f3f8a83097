import Foundation
import KVGossipClient
import Testing
import KVGossipTestSupport

extension AgentTests {
    /// A list subscription loses its only agent; while the client is away the agent's data is
    /// changed (through a second agent process on the same data directory but a socket the
    /// client does not know), then the agent comes back. The client's set is reconciled against
    /// the fresh answer — the deleted key removed, the changed one updated, the new one added —
    /// and ends up equal to `kvgossip ls`.
    @Test func aListReconcilesWhatChangedWhileAway() async throws {
        let sandbox = try Sandbox()
        let root = try await sandbox.keygen("root.key")
        var agent = try await sandbox.startAgent("A", root: root)
        for (k, v) in [("/app/a", "1"), ("/app/b", "2"), ("/app/c", "3"), ("/other/x", "9")] {
            #expect(try await agent.cli(["set", k, v]).status == 0)
        }
        let client = KVClient(endpoints: [.unix(agent.socket)], options: testOptions())
        let list = try await client.subscribeList(pattern: "/app/**")
        let events = Recorder<ListEvent>(sequence: list.events)
        #expect(await eventually { events.all.last == .synced(.initial) })
        #expect(Set(events.all.compactMap(\.key)) == ["/app/a", "/app/b", "/app/c"])
        #expect(list.isSynced)

        // Live changes flow while connected.
        #expect(try await agent.cli(["set", "/app/c", "33"]).status == 0)
        #expect(await eventually { list.entries["/app/c"]?.string == "33" })

        await agent.stop()
        #expect(await eventually { events.all.last == .connectionLost })
        #expect(!list.isSynced)

        // Change the data while the client cannot see it.
        let port = agent.port
        let offline = try await sandbox.startAgent("A", root: root, port: LoopbackPort.free(), control: "A-offline.sock", data: "A-data")
        #expect(try await offline.cli(["rm", "/app/a"]).status == 0)
        #expect(try await offline.cli(["set", "/app/b", "22"]).status == 0)
        #expect(try await offline.cli(["set", "/app/d", "4"]).status == 0)
        #expect(try await offline.cli(["set", "/other/y", "8"]).status == 0)
        await offline.stop()
        let before = events.all.count

        agent = try await sandbox.startAgent("A", root: root, port: port)
        #expect(await eventually { events.all.last == .synced(.resync) }, "\(events.all)")
        let resync = Array(events.all[before...])
        #expect(resync.contains(.removed(key: "/app/a", .resync)))
        #expect(resync.contains { if case .updated(let r, .resync) = $0 { r.key == "/app/b" && r.string == "22" } else { false } })
        #expect(resync.contains { if case .added(let r, .resync) = $0 { r.key == "/app/d" && r.string == "4" } else { false } })
        #expect(!resync.contains { $0.key == "/app/c" }, "unchanged keys are not reported")
        #expect(!resync.contains { $0.key?.hasPrefix("/other") == true }, "keys outside the pattern are not reported")

        let truth = try await Self.listing(agent, "/app/**")
        let mine = list.entries
        #expect(Set(mine.keys) == Set(truth.keys))
        for (key, record) in mine {
            #expect(record.string == truth[key]?.value)
            #expect(record.digest == truth[key]?.digest)
        }
        // Replaying the events from the start rebuilds exactly the client's set.
        var replay: [String: String] = [:]
        for e in events.all {
            switch e {
            case .added(let r, _), .updated(let r, _): replay[r.key] = r.string
            case .removed(let key, _): replay.removeValue(forKey: key)
            case .synced, .connectionLost, .fellBehind: break
            }
        }
        #expect(replay == mine.mapValues { $0.string ?? "" })
        #expect(list.isSynced)
        await list.unsubscribe()
        await client.close()
    }
}
