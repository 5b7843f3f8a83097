import Foundation
import KVGossipClient
import KVGossipCore
import KVGossipTestSupport
import Testing

extension AgentTests {
    /// Against a real agent every path still delivers, now verified (Docs/client.md
    /// §Verification): a record written by a granted client comes back through get, list, a
    /// snapshot list, a key subscription, a list subscription and the write's own result with the
    /// chain the client found itself (one grant, from the root), over the Unix socket (root learned
    /// from the agent) and over TCP (root configured), and agrees with the agent's own listing.
    @Test func readsWatchesAndWritesVerifyAgainstARealAgent() async throws {
        let sandbox = try Sandbox()
        let root = try await sandbox.keygen("root.key")
        let alice = try await sandbox.grantee("alice", pattern: "/app/**")
        let tcpPort = LoopbackPort.free()
        let agent = try await sandbox.startAgent("A", root: root, extra: ["--control-listen", "127.0.0.1:\(tcpPort)"])
        #expect(try await agent.cli(["set", "/app/by-node", "n"]).status == 0)

        var options = testOptions()
        options.identity = try ClientIdentity(keyFile: sandbox.path("alice.key"), proofFiles: [sandbox.path("alice.grant")])
        let local = KVClient(endpoints: [.unix(agent.socket)], options: options)
        let sub = try await local.subscribeKey("/app/x")
        let list = try await local.subscribeList(pattern: "/app/**")
        let events = Recorder(sequence: list.events)

        let written = try await local.put("/app/x", value: Data("verified".utf8))
        let record = try #require(written.record)
        #expect(written.outcome == .accepted && record.signer == alice && record.chain.count == 1)
        let rootKey = try PublicKey(text: root)
        #expect(record.chain.first?.hasPrefix("\(rootKey.fingerprint) -> ") == true && record.chain.first?.contains(" /app/** grant=") == true)
        #expect(try await local.get("/app/x") == .value(record))
        #expect(try await local.get("/app/by-node").record?.chain == ["root"])
        #expect(try await local.list(pattern: "/app/**").map(\.key) == ["/app/by-node", "/app/x"])
        #expect(try await local.list(patterns: ["/app/x"]) == [record])
        _ = try await first(sub.valueChanges) { $0 == .value(record) }
        #expect(await eventually { sub.dirtiness == .synced })
        #expect(await eventually { list.entries["/app/x"] == record && list.entries["/app/by-node"] != nil })
        #expect(list.unverified.isEmpty && !events.all.contains { if case .unverified = $0 { true } else { false } })
        let truth = try await Self.listing(agent, "/app/**")
        #expect(truth["/app/x"]?.digest == record.digest, "the digest the client computed is the agent's")

        let deleted = try await local.delete("/app/x")
        #expect(deleted.record?.isTombstone == true)
        _ = try await first(sub.valueChanges) { $0 == .deleted(deleted.record!) }
        #expect(try await local.mint("/app/node", value: Data("m".utf8)).record?.chain == ["root"])

        var remoteOptions = testOptions()
        remoteOptions.cluster = try PublicKey(text: root)
        remoteOptions.identity = options.identity  // alice's grant admits her to the TCP listener
        let remote = KVClient(endpoints: [.tcp(host: "127.0.0.1", port: tcpPort)], options: remoteOptions)
        #expect(try await remote.get("/app/by-node").string == "n")
        #expect(try await remote.get("/app/x") == .deleted(deleted.record!))

        await list.unsubscribe()
        await sub.unsubscribe()
        await remote.close()
        await local.close()
    }
}
