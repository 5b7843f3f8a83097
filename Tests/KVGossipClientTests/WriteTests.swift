import Foundation
import KVGossipClient
import KVGossipCore
import Testing
import KVGossipTestSupport

extension AgentTests {
    /// Client-signed writes are verified like a peer's records: a missing proof, a proof for other
    /// keys and a revoked proof are refused with their reason codes; a good one is stored with
    /// the client as signer and reaches subscribers.
    @Test func clientSignedWritesAreVerifiedAndRefusalsCarryTheReason() async throws {
        let sandbox = try Sandbox()
        let root = try await sandbox.keygen("root.key")
        let alice = try await sandbox.grantee("alice", pattern: "/team/**")
        let a = try await sandbox.startAgent("A", root: root)
        let client = KVClient(endpoints: [.unix(a.socket)], options: testOptions())
        let sub = try await client.subscribeKey("/team/x")

        let bare = try ClientIdentity(keyFile: sandbox.path("alice.key"))
        let proven = try ClientIdentity(keyFile: sandbox.path("alice.key"), proofFiles: [sandbox.path("alice.grant")])
        #expect(proven.publicKey == alice)

        await #expect { try await client.put("/team/x", value: Data("v".utf8), as: bare) } throws: {
            ($0 as? KVClientError)?.reason == .noAuthority
        }
        await #expect { try await client.put("/elsewhere/x", value: Data("v".utf8), as: proven) } throws: {
            ($0 as? KVClientError)?.reason == .noAuthority
        }
        await #expect { try await client.put("/team/x", value: Data("v".utf8)) } throws: {
            ($0 as? KVClientError)?.reason == .noIdentity
        }

        let ok = try await client.put("/team/x", value: Data("from alice".utf8), as: proven)
        #expect(ok.outcome == .accepted)
        #expect(ok.record?.signer == alice)
        let seen = try await first(sub.valueChanges) { $0.string == "from alice" }
        #expect(seen.record?.chain.count == 1)
        // Writing again mints after the current record, so it wins.
        let again = try await client.put("/team/x", value: Data("again".utf8), as: proven)
        #expect(again.outcome == .accepted)
        #expect((again.record?.timestamp ?? 0) > (ok.record?.timestamp ?? .max))

        let deleted = try await client.delete("/team/x", as: proven)
        #expect(deleted.record?.isTombstone == true)
        let tomb = try await first(sub.valueChanges) { if case .deleted = $0 { true } else { false } }
        #expect(tomb.record?.signer == alice)
        #expect(try await client.get("/team/x") == tomb)

        #expect(try await a.cli(["revoke", "--key", "root.key", "alice.grant"]).status == 0)
        do {
            try await client.put("/team/x", value: Data("after revocation".utf8), as: proven)
            Issue.record("a write with a revoked proof was accepted")
        } catch let error as KVClientError {
            #expect(error.reason == .revoked, "\(error)")
            #expect(error.revokedGrants.count == 1, "the refusal names the revoked grant")
        }

        // Node-key writes through the local socket.
        #expect(try await client.mint("/svc/flag", value: Data("on".utf8)).outcome == .accepted)
        #expect(try await client.get("/svc/flag").string == "on")
        #expect(try await client.remove("/svc/flag").record?.isTombstone == true)
        await #expect { try await client.remove("/svc/flag") } throws: { ($0 as? KVClientError)?.reason == .notFound }
        await #expect { try await client.put("/bad//key", value: Data()) } throws: { ($0 as? KVClientError)?.reason == .invalidKey }
        await client.close()
    }

    /// Over TCP the agent serves reads and client-signed writes, and refuses node-key minting.
    @Test func overTCPOnlyClientSignedWritesAreAccepted() async throws {
        let sandbox = try Sandbox()
        let root = try await sandbox.keygen("root.key")
        let tcpPort = LoopbackPort.free()
        let a = try await sandbox.startAgent("A", root: root, extra: ["--control-listen", "127.0.0.1:\(tcpPort)"])
        var options = testOptions()
        options.identity = try ClientIdentity(keyFile: sandbox.path("root.key"))
        options.cluster = try PublicKey(text: root)
        let client = KVClient(addresses: ["127.0.0.1:\(tcpPort)"], options: options)
        await #expect { try await client.mint("/x", value: Data("v".utf8)) } throws: {
            ($0 as? KVClientError)?.reason == .noAuthority
        }
        let put = try await client.put("/x", value: Data("root-signed".utf8))
        #expect(put.outcome == .accepted)
        #expect(try await a.cli(["get", "/x"]).stdout == "root-signed")
        await client.close()
    }
}
