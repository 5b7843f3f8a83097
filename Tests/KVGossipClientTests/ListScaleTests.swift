import Foundation
import KVGossipClient
import KVGossipCore
import KVGossipTestSupport
import Testing

extension AgentTests {
    /// A list subscription and `list(pattern:)` over a 50,000-key tree: the agent answers in pages,
    /// the client holds them all.
    @Test func aListSubscriptionHoldsAFiftyThousandKeyTree() async throws {
        let sandbox = try Sandbox()
        let root = SigningKey(seed: [UInt8](repeating: 9, count: 32))!
        let count = 50_000
        try TreeGenerator.fill(directory: sandbox.path("A-data"), root: root, count: count)
        guard FileManager.default.createFile(
            atPath: sandbox.path("root.key"), contents: Data(SecretKeyFile.render(root).utf8), attributes: [.posixPermissions: 0o600])
        else { throw SandboxError("cannot write root.key") }
        let agent = try await sandbox.startAgent("A", root: root.publicKey.text)
        let client = KVClient(endpoints: [.unix(agent.socket)], options: testOptions())

        let list = try await client.subscribeList(pattern: "/big/**")
        let events = Recorder<ListEvent>(sequence: list.events)
        #expect(await eventually(.seconds(300)) { events.all.last == .synced(.initial) }, "\(events.all.count) events")
        #expect(list.entries.count == count)
        #expect(list.entries[TreeGenerator.key(count - 1, under: "/big")]?.string == TreeGenerator.value(count - 1))
        #expect(events.all.count == count + 1, "one added per key, then synced")

        // A change after the initial pages arrives live.
        #expect(try await agent.cli(["set", TreeGenerator.key(7, under: "/big"), "changed"]).status == 0)
        #expect(await eventually { list.entries[TreeGenerator.key(7, under: "/big")]?.string == "changed" })

        let listed = try await client.list(pattern: "/big/d004*/*")
        #expect(listed.count == 10_000)
        #expect(listed.map(\.key) == (40_000..<50_000).map { TreeGenerator.key($0, under: "/big") })
        await list.unsubscribe()
        await client.close()
    }

    /// A revocation unsets five keys in one commit; with room for two changes per watch the
    /// subscription's watch falls behind. The client is told (`.fellBehind`) and compares the
    /// agent's fresh answer with its set, exactly as after a reconnect.
    @Test func aListThatFellBehindResyncsWithoutReconnecting() async throws {
        let sandbox = try Sandbox()
        let root = try await sandbox.keygen("root.key")
        let alice = try await sandbox.keygen("alice.key")
        #expect(try await sandbox.run(["grant", "--issuer-key", "root.key", "--to", alice, "--pattern", "/team/**", "--out", "alice.grant"]).status == 0)
        try #"{"controlWatchBacklog": 2}"#.write(toFile: sandbox.path("agent.json"), atomically: true, encoding: .utf8)
        let agent = try await sandbox.startAgent("A", root: root, extra: ["--config", sandbox.path("agent.json")])
        for i in 0..<5 {
            #expect(try await agent.cli(["set", "--key-file", "alice.key", "--proof", "alice.grant", "/team/k\(i)", "v\(i)"]).status == 0)
        }
        #expect(try await agent.cli(["set", "/team/root-owned", "kept"]).status == 0)
        let client = KVClient(endpoints: [.unix(agent.socket)], options: testOptions())
        let list = try await client.subscribeList(pattern: "/team/**")
        let events = Recorder<ListEvent>(sequence: list.events)
        #expect(await eventually { events.all.last == .synced(.initial) })
        #expect(list.entries.count == 6)
        let before = events.all.count

        #expect(try await agent.cli(["revoke", "--key", "root.key", "alice.grant"]).status == 0)
        #expect(await eventually { events.all.last == .synced(.resync) }, "\(events.all[before...])")
        // Changes the watch had room for arrive live; the fall comes next, and the rest is found by comparing.
        let after = Array(events.all[before...])
        #expect(after.contains(.fellBehind), "\(after)")
        let fall = after.firstIndex(of: .fellBehind) ?? after.endIndex
        #expect(after[..<fall].allSatisfy { $0.cause == .live } && after[fall...].dropFirst().allSatisfy { $0.cause == .resync }, "\(after)")
        #expect(Set(after.compactMap { if case .removed(let key, _) = $0 { key } else { nil } }) == Set((0..<5).map { "/team/k\($0)" }))
        #expect(after.contains { if case .removed(_, .resync) = $0 { true } else { false } }, "some removals were found only by comparing")
        #expect(list.entries.keys.sorted() == ["/team/root-owned"])
        #expect(list.isSynced)
        await list.unsubscribe()
        await client.close()
    }
}
