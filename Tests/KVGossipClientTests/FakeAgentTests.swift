import Foundation
import KVGossipClient
import KVGossipCore
import KVGossipTestSupport
import KVGossipTestTraits
import Testing

/// Attacks by an agent that lies (Docs/client.md §Verification): a ``FakeAgent`` on a Unix
/// socket serves forged, unauthorized and future-dated records, and the client must deliver none
/// of them as a value through any path (get, list, snapshot list, key and list subscriptions),
/// and must sign nothing dated after a future "current" record.
@Suite(.serialized, .integration) struct FakeAgentTests {
    func client(_ fake: FakeAgent, cluster: PublicKey?) -> KVClient {
        var options = testOptions()
        options.cluster = cluster
        return KVClient(endpoints: [.unix(fake.socket)], options: options)
    }

    /// The failure a call ends with, or nil when it succeeded.
    func failure(_ call: () async throws -> some Any) async -> KVClientError? {
        do {
            _ = try await call()
            return nil
        } catch {
            return error as? KVClientError ?? KVClientError(.internal, "\(error)")
        }
    }

    static func isUnverified(_ d: Dirtiness) -> Bool { if case .unverified = d { true } else { false } }

    /// (a) A genuine record whose value was changed on the way: a signature that does not cover it.
    @Test func aTamperedRecordIsNeverDelivered() async throws {
        let sandbox = try Sandbox()
        let forgery = Forgery()
        let fake = try FakeAgent(
            socket: sandbox.path("fake.sock"), root: forgery.cluster,
            records: [forgery.tampered("/app/a", "good", to: "evil"), forgery.record("/app/b", "fine")])
        defer { fake.stop() }
        let client = client(fake, cluster: forgery.cluster)

        let got = await failure { try await client.get("/app/a") }
        #expect(got?.reason == .unverifiedRecord && got?.key == "/app/a" && got?.check == .badSignature, "\(String(describing: got))")
        #expect(try await client.get("/app/b").string == "fine", "a genuine record beside it is delivered")
        #expect(await failure { try await client.list(pattern: "/app/**") }?.check == .badSignature)
        #expect(await failure { try await client.list(patterns: ["/app/**"]) }?.check == .badSignature)

        let sub = try await client.subscribeKey("/app/a")
        let marked = try await first(sub.dirtinessChanges) { Self.isUnverified($0) }
        #expect(marked.isDirty && sub.value == .unknown, "the forged value is not shown: \(sub.value)")
        // A genuine change is shown; a tampered one after it is not, and the genuine one stays.
        fake.push(forgery.record("/app/a", "real"))
        _ = try await first(sub.valueChanges) { $0.string == "real" }
        #expect(sub.dirtiness == .synced)
        fake.push(forgery.tampered("/app/a", "real", to: "evil"))
        _ = try await first(sub.dirtinessChanges) { Self.isUnverified($0) }
        #expect(sub.value.string == "real")

        let list = try await client.subscribeList(pattern: "/app/**")
        let events = Recorder(sequence: list.events)
        #expect(await eventually { events.all.contains(.synced(.initial)) })
        #expect(list.entries.mapValues { $0.string ?? "" } == ["/app/b": "fine"])
        #expect(list.unverified["/app/a"]?.check == .badSignature)
        #expect(events.all.contains { if case .unverified(key: "/app/a", _) = $0 { true } else { false } })
        #expect(!events.all.contains { $0.key == "/app/a" && $0.cause != nil }, "no added or updated event for the forged key")
        await list.unsubscribe()
        await sub.unsubscribe()
        await client.close()
    }

    /// (b) Validly signed, by keys the root never authorized: a stranger whose grant comes from
    /// an impostor, and a whole other cluster's root. The client learns the root from the socket
    /// here (no `cluster` configured), as a client of the local agent does.
    @Test func recordsWithoutAGrantFromTheRootAreNeverDelivered() async throws {
        let sandbox = try Sandbox()
        let forgery = Forgery()
        let fake = try FakeAgent(
            socket: sandbox.path("fake.sock"), root: forgery.cluster,
            records: [forgery.unauthorized("/app/a", "stranger"), forgery.otherCluster("/app/c", "elsewhere")])
        defer { fake.stop() }
        let client = client(fake, cluster: nil)

        for key in ["/app/a", "/app/c"] {
            let got = await failure { try await client.get(key) }
            #expect(got?.reason == .unverifiedRecord && got?.key == key && got?.check == .noAuthority, "\(String(describing: got))")
        }
        #expect(await failure { try await client.list(pattern: "/app/**") }?.check == .noAuthority)
        let sub = try await client.subscribeKey("/app/a")
        let marked = try await first(sub.dirtinessChanges) { Self.isUnverified($0) }
        guard case .unverified(let error) = marked else { return }
        #expect(error.check == .noAuthority && sub.value == .unknown)

        let list = try await client.subscribeList(pattern: "/app/**")
        let events = Recorder(sequence: list.events)
        #expect(await eventually { events.all.contains(.synced(.initial)) })
        #expect(list.entries.isEmpty && Set(list.unverified.keys) == ["/app/a", "/app/c"])
        // Writing needs the current record, which does not verify: nothing is signed.
        let identity = ClientIdentity(signingKey: forgery.writer, proofs: [forgery.writerGrant])
        #expect(await failure { try await client.put("/app/a", value: Data("x".utf8), as: identity) }?.check == .noAuthority)
        #expect(!fake.requests.contains { $0.op == .put })
        await list.unsubscribe()
        await sub.unsubscribe()
        await client.close()
    }

    /// (c) A "current" record dated an hour ahead, validly signed by an authorized writer: it is
    /// not delivered, and the client signs no record after it (it would be dated an hour ahead
    /// too). The fake agent never receives a `put`.
    @Test func aFutureDatedCurrentRecordIsRefusedAndNothingIsSignedAfterIt() async throws {
        let sandbox = try Sandbox()
        let forgery = Forgery()
        let hourAhead = Forgery.nowMs + 3_600_000
        let fake = try FakeAgent(
            socket: sandbox.path("fake.sock"), root: forgery.cluster, records: [forgery.record("/app/a", "future", atMs: hourAhead)])
        defer { fake.stop() }
        let client = client(fake, cluster: forgery.cluster)

        let got = await failure { try await client.get("/app/a") }
        #expect(got?.reason == .unverifiedRecord && got?.check == .clockSkew, "\(String(describing: got))")
        let identity = ClientIdentity(signingKey: forgery.writer, proofs: [forgery.writerGrant])
        let put = await failure { try await client.put("/app/a", value: Data("now".utf8), as: identity) }
        #expect(put?.reason == .clockSkew || put?.check == .clockSkew, "\(String(describing: put))")
        #expect(await failure { try await client.delete("/app/a", as: identity) } != nil)
        #expect(!fake.requests.contains { $0.op == .put }, "no record was signed and sent")

        let sub = try await client.subscribeKey("/app/a")
        _ = try await first(sub.dirtinessChanges) { Self.isUnverified($0) }
        #expect(sub.value == .unknown)
        await sub.unsubscribe()
        await client.close()
    }

    /// (d) An agent that answers a write with a record that does not verify (a tampered one, or
    /// one no grant reaches) is not believed about the write either: the call fails with
    /// `unverified-record` (Docs/client.md §Verification).
    @Test func aWriteAnsweredWithAForgedRecordFails() async throws {
        let sandbox = try Sandbox()
        let forgery = Forgery()
        let fake = try FakeAgent(socket: sandbox.path("fake.sock"), root: forgery.cluster, records: [forgery.record("/app/a", "good")])
        defer { fake.stop() }
        let client = client(fake, cluster: forgery.cluster)
        for (answer, check) in [(forgery.tampered("/app/a", "good", to: "evil"), KVClientError.Reason.badSignature),
                                (forgery.record("/app/a", "good", by: SigningKey.generate()), .noAuthority)] {
            fake.writeAnswer.withLock { $0 = answer }
            let minted = await failure { try await client.mint("/app/a", value: Data("good".utf8)) }
            #expect(minted?.reason == .unverifiedRecord && minted?.check == check, "mint: \(String(describing: minted))")
            let removed = await failure { try await client.remove("/app/a") }
            #expect(removed?.reason == .unverifiedRecord && removed?.check == check, "remove: \(String(describing: removed))")
        }
        await client.close()
    }

    /// A root learned from the local socket is pinned: when the client fails over to an agent of
    /// another cluster (which names its own root), nothing that agent serves is delivered.
    @Test func aLearnedRootIsPinnedAcrossFailover() async throws {
        let sandbox = try Sandbox()
        let (mine, theirs) = (Forgery(), Forgery())
        let first = try FakeAgent(socket: sandbox.path("first.sock"), root: mine.cluster, records: [mine.record("/app/a", "mine")])
        let second = try FakeAgent(socket: sandbox.path("second.sock"), root: theirs.cluster, records: [theirs.record("/app/a", "theirs")])
        defer {
            first.stop()
            second.stop()
        }
        let client = KVClient(endpoints: [.unix(first.socket), .unix(second.socket)], options: testOptions())
        #expect(try await client.get("/app/a").string == "mine")
        first.stop()
        var last: KVClientError?
        #expect(await eventually {
            last = await failure { try await client.get("/app/a") }
            return last?.check != nil
        })
        #expect(last?.check == .noAuthority && second.requests.contains { $0.op == .get }, "\(String(describing: last))")
        #expect(!second.requests.contains { $0.op == .status }, "the pinned root is not asked again")
        await client.close()
    }

    /// A client with a TCP endpoint and no configured root refuses every call with `no-root`:
    /// it would otherwise verify records against whatever root the far end names.
    @Test func overTCPARootMustBeConfigured() async throws {
        let port = LoopbackPort.free()
        let client = KVClient(endpoints: [.unix("/nonexistent/kvgossip.sock"), .tcp(host: "127.0.0.1", port: port)], options: testOptions())
        #expect(await failure { try await client.get("/app/a") }?.reason == .noRoot)
        #expect(await failure { try await client.list(pattern: "/**") }?.reason == .noRoot)
        #expect(await failure { try await client.subscribeKey("/app/a") }?.reason == .noRoot)
        #expect(await failure { try await client.subscribeList(pattern: "/**") }?.reason == .noRoot)
        let identity = ClientIdentity(signingKey: SigningKey.generate())
        #expect(await failure { try await client.put("/app/a", value: Data(), as: identity) }?.reason == .noRoot)
        await client.close()
    }
}
