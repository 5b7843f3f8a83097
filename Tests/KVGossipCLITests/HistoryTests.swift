import Foundation
import KVGossipCore
import KVGossipTestSupport
import KVGossipTestTraits
import Testing

/// Provenance across real agents (Docs/history.md): every host online sees each version as it is
/// pushed, `log` names signers and chains, `revert` is a new write everywhere, an export verifies
/// offline and a tampered one is refused, and a revoked grant's versions show as revoked.
@Suite(.serialized, .integration) struct HistoryTests {
    static func versions(_ agent: AgentProcess, _ target: String, _ extra: [String] = []) throws -> [[String: Any]] {
        let r = try agent.run(["log", "--json"] + extra + [target])
        guard r.status == 0, let list = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]] else {
            throw CLIError("log \(target) failed: \(r.stderr)")
        }
        return list
    }

    static func field(_ versions: [[String: Any]], _ name: String) -> [String] { versions.map { "\($0[name] ?? "-")" } }

    /// The ways to name what `revert` brings back, and what it refuses (Docs/history.md
    /// §Reverting): a raw timestamp, a digest prefix, a deletion (a tombstone is written), another
    /// signer with `--key-file` and `--proof`; not the current version, not a prefix too short to
    /// name one, not a signer whose grant does not cover the key.
    @Test func revertNamesAVersionByTimestampOrDigestAndRefusesWhatChangesNothing() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let alice = try cli.keygen("alice.key")
        #expect(try cli.run(["grant", "--issuer-key", "root.key", "--to", alice, "--pattern", "/cfg/**", "--out", "alice.grant"]).status == 0)
        let agent = try AgentProcess(cli: cli, root: root, extraArgs: ["--key", "root.key"])
        let key = "/cfg/k"
        for step in [["set", key, "one"], ["set", key, "two"], ["rm", key], ["set", key, "three"]] {
            let r = try agent.run(step)
            #expect(r.status == 0, "\(step): \(r.stderr)")
        }
        let before = try Self.versions(agent, key)
        #expect(Self.field(before, "kind") == ["value", "tombstone", "value", "value"], "\(before)")
        let digests = before.compactMap { $0["digest"] as? String }
        let timestamps = before.compactMap { $0["timestamp"] as? UInt64 }
        #expect(digests.count == 4 && timestamps.count == 4)

        let current = try agent.run(["revert", key, String(digests[0].prefix(8))])
        #expect(try current.status != 0 && Self.versions(agent, key).count == 4, "reverting to the current version: \(current)")
        let short = try agent.run(["revert", key, String(digests[3].prefix(7))])
        #expect(try short.status != 0 && Self.versions(agent, key).count == 4, "a 7-digit prefix: \(short)")
        // Alice may write /cfg/** only: /x's old value cannot come back with her key.
        for value in ["x1", "x2"] { #expect(try agent.run(["set", "/x", value]).status == 0) }
        let x1 = try #require(try Self.versions(agent, "/x").last?["digest"] as? String)
        let outside = try agent.run(["revert", "--key-file", "alice.key", "--proof", "alice.grant", "/x", String(x1.prefix(8))])
        #expect(outside.status != 0 && outside.stderr.contains("no-authority"), "\(outside)")
        #expect(try agent.run(["get", "/x"]).stdout == "x2")

        // By raw timestamp: the first value is back, as a new version signed by the node key.
        let byTime = try agent.run(["revert", key, String(timestamps[3])])
        #expect(byTime.status == 0, "\(byTime.stderr)")
        #expect(try agent.run(["get", key]).stdout == "one")
        // To the deletion: a tombstone.
        let toDeletion = try agent.run(["revert", key, String(digests[1].prefix(10))])
        #expect(toDeletion.status == 0, "\(toDeletion.stderr)")
        #expect(try agent.run(["get", key]).status != 0)
        #expect(try Self.versions(agent, key).first?["kind"] as? String == "tombstone")
        // By another signer, whose grant covers the key.
        let byAlice = try agent.run(["revert", "--key-file", "alice.key", "--proof", "alice.grant", key, String(digests[2].prefix(12))])
        #expect(byAlice.status == 0, "\(byAlice.stderr)")
        #expect(try agent.run(["get", key]).stdout == "two")
        let after = try Self.versions(agent, key)
        #expect(after.count == 7 && after.first?["signer"] as? String == alice, "\(after.first ?? [:])")
        #expect(after.first?["restores"] as? String == digests[2])
    }

    @Test func fiveWritesByThreeSignersRevertExportAndRevocation() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let alice = try cli.keygen("alice.key")
        let bob = try cli.keygen("bob.key")
        for (name, key) in [("alice", alice), ("bob", bob)] {
            #expect(try cli.run(["grant", "--issuer-key", "root.key", "--to", key, "--pattern", "/cfg/**", "--out", "\(name).grant"]).status == 0)
        }
        let agents = try GossipTests.cluster(cli, root: root, peers: [[1, 2], [0, 2], [0, 1]])
        let (a, b, c) = (agents[0], agents[1], agents[2])
        let key = "/cfg/app"
        let asAlice = ["--key-file", "alice.key", "--proof", "alice.grant"], asBob = ["--key-file", "bob.key", "--proof", "bob.grant"]
        // Five writes by three signers (the agents' node key is the root) on two hosts; each reaches C.
        let writes: [(AgentProcess, [String], String, String)] = [
            (a, [], "one", root), (a, asAlice, "two", alice), (b, asBob, "three", bob), (b, [], "four", root), (b, asAlice, "five", alice),
        ]
        for (host, signer, value, _) in writes {
            let w = try host.run(["set"] + signer + [key, value])
            #expect(w.status == 0, "\(w.stderr)")
            #expect(try Readiness.wait { try c.run(["get", key]).stdout == value }, "\(value) did not reach C")
        }

        let seen = try Self.versions(c, key, ["--values"])
        #expect(Self.field(seen, "value") == ["five", "four", "three", "two", "one"])
        #expect(Self.field(seen, "signer") == writes.reversed().map { $0.3 })
        #expect(Self.field(seen, "standing") == Array(repeating: "valid", count: 5))
        #expect(Self.field(seen, "current") == ["1", "0", "0", "0", "0"])
        let aliceGrant = try #require(try cli.run(["inspect", "--json", "alice.grant"]).stdout.firstMatch(of: /"id" : "([0-9a-f]{16})/)?.1)
        let chains = seen.map { ($0["chain"] as? [String] ?? []).joined(separator: " | ") }
        #expect(chains[0].contains("grant=\(aliceGrant)") && chains[3].contains("grant=\(aliceGrant)"), "\(chains)")
        #expect(chains[1] == "root" && chains[4] == "root" && !chains[2].contains(aliceGrant) && chains[2].contains("grant="), "\(chains)")

        // Revert to the second write, on A with its node key: a new version everywhere.
        let second = try #require(seen[3]["digest"] as? String)
        let fifthTime = try #require(seen[0]["timestamp"] as? UInt64)
        let r = try a.run(["revert", key, String(second.prefix(12))])
        #expect(r.status == 0, "\(r.stderr)")
        for agent in agents {
            #expect(try Readiness.wait { try agent.run(["get", key]).stdout == "two" })
            let now = try Self.versions(agent, key)
            #expect((now[0]["timestamp"] as? UInt64 ?? 0) > fifthTime && now[0]["digest"] as? String != second)
        }
        let afterRevert = try Self.versions(c, key)
        #expect(afterRevert.count == 6 && afterRevert[0]["restores"] as? String == second, "\(afterRevert.first ?? [:])")
        #expect(try c.run(["log", key]).stdout.contains("reverts: brings back the value of \(second.prefix(16))"))

        // Exported evidence verifies on a machine that has only the root public key.
        #expect(try c.run(["log", key, "--export", cli.path("evidence.txt")]).status == 0)
        // An existing file (a key, say) is replaced only with --force.
        let again = try c.run(["log", key, "--export", cli.path("evidence.txt")])
        #expect(again.status != 0 && again.stderr.contains("--force"), "\(again)")
        #expect(try c.run(["log", key, "--export", cli.path("evidence.txt"), "--force"]).status == 0)
        let elsewhere = try CLIProcess()
        defer { elsewhere.cleanUp() }
        let evidence = try String(contentsOfFile: cli.path("evidence.txt"), encoding: .utf8)
        try evidence.write(toFile: elsewhere.path("evidence.txt"), atomically: true, encoding: .utf8)
        let verified = try elsewhere.run(["inspect", "--root", root, "evidence.txt"])
        #expect(verified.status == 0, "\(verified.stderr)")
        #expect(verified.stdout.components(separatedBy: "signature: valid").count - 1 == 6)
        // One byte of the third record's value changed: refused, naming that record.
        var blocks = try Armor.parse(evidence).map(\.bytes)
        let victim = try Record(decoding: blocks[2])
        blocks[2][victim.signedBytes.count + 64 + 4] ^= 0x01
        try blocks.map { Armor.render(.record, $0) }.joined().write(toFile: elsewhere.path("tampered.txt"), atomically: true, encoding: .utf8)
        let refused = try elsewhere.run(["inspect", "--root", root, "tampered.txt"])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("record \(key) version \(victim.digest.hex.prefix(16))") && refused.stderr.contains("signature does not verify"), "\(refused.stderr)")
        // Another root: every record refused.
        let stranger = try elsewhere.keygen("other.key")
        #expect(try elsewhere.run(["inspect", "--root", stranger, "evidence.txt"]).status != 0)
        // Well signed, for this cluster, by a key no grant reaches: refused (a signature alone is
        // no evidence of authority, Docs/history.md §Exporting evidence).
        let chainless = Record(
            cluster: try PublicKey(text: root), key: try Key(key), kind: .value, value: Array("forged".utf8),
            timestamp: HLC(physicalMs: UInt64(Date().timeIntervalSince1970 * 1000)), signer: SigningKey.generate(), pool: [])
        try Armor.render(.record, chainless.encoded).write(toFile: elsewhere.path("chainless.txt"), atomically: true, encoding: .utf8)
        let unauthorized = try elsewhere.run(["inspect", "--root", root, "chainless.txt"])
        #expect(unauthorized.status != 0 && unauthorized.stdout.contains("signature: valid"), "\(unauthorized.stdout)\(unauthorized.stderr)")

        // Alice writes last, then her grant is revoked: the key is unset, her versions show revoked.
        #expect(try a.run(["set"] + asAlice + [key, "seven"]).status == 0)
        #expect(try Readiness.wait { try c.run(["get", key]).stdout == "seven" })
        #expect(try a.run(["revoke", "--key", "root.key", "alice.grant"]).status == 0)
        #expect(try Readiness.wait {
            _ = try c.run(["sync"])
            return try c.run(["get", key]).status != 0
        })
        let revoked = try Self.versions(c, key)
        #expect(revoked.count == 7 && Self.field(revoked, "current").allSatisfy { $0 == "0" })
        let bySigner = zip(Self.field(revoked, "signer"), Self.field(revoked, "standing"))
        #expect(bySigner.allSatisfy { signer, standing in standing == (signer == alice ? "revoked" : "valid") }, "\(Array(bySigner))")
        #expect(try c.run(["log", key]).stdout.contains("has no current version"))

        // The same history read offline from C's data directory once C has stopped.
        c.stop()
        let offline = try cli.run(["log", "--json", "--data", c.data, key])
        #expect(offline.status == 0, "\(offline.stderr)")
        let offlineVersions = try JSONSerialization.jsonObject(with: Data(offline.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(Self.field(offlineVersions, "digest") == Self.field(revoked, "digest"))
    }

    /// Docs/history.md §What each host sees: a host that was away learns only the newest version.
    @Test func aHostThatWasAwayLearnsOnlyTheNewestVersion() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        var agents = try GossipTests.cluster(cli, root: root, peers: [[1], [0]])
        try agents[0].run(["set", "/k", "first"])
        #expect(try Readiness.wait { try agents[1].run(["get", "/k"]).stdout == "first" })
        agents[1].stop()
        for value in ["second", "third", "fourth"] { try agents[0].run(["set", "/k", value]) }
        let args = agents[1].process.arguments!
        agents[1] = try AgentProcess(cli: cli, name: "B", root: root, extraArgs: Array(args[args.firstIndex(of: "--key")!...]))
        #expect(try Readiness.wait { try agents[1].run(["get", "/k"]).stdout == "fourth" })
        #expect(Self.field(try Self.versions(agents[0], "/k", ["--values"]), "value") == ["fourth", "third", "second", "first"])
        #expect(Self.field(try Self.versions(agents[1], "/k", ["--values"]), "value") == ["fourth", "first"])
    }
}
