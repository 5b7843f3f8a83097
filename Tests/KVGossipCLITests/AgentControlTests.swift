import Foundation
import KVGossipTestSupport
import KVGossipTestTraits
import Testing

/// The agent and the CLI's agent commands, as real processes over the real control socket.
@Suite(.serialized, .integration) struct AgentControlTests {
    @Test func setGetRmLsThroughTheSocket() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let agent = try AgentProcess(cli: cli, root: root, extraArgs: ["--key", "root.key"])
        #expect(try agent.run(["set", "/app/db/url", "postgres://db2"]).status == 0)
        #expect(try agent.run(["get", "/app/db/url"]).stdout == "postgres://db2")
        #expect(try agent.run(["set", "/app/empty", ""]).status == 0)
        #expect(try agent.run(["get", "/app/empty"]).stdout == "")
        #expect(try agent.run(["ls"]).out == "/app/db/url\n/app/empty")
        #expect(try agent.run(["ls", "/app/db"]).out == "/app/db/url")
        #expect(try agent.run(["ls", "/app/*"]).out == "/app/empty")
        #expect(try agent.run(["rm", "/app/db/url"]).status == 0)
        let gone = try agent.run(["get", "/app/db/url"])
        #expect(gone.status != 0 && gone.stderr.contains("not-found"))
        let again = try agent.run(["rm", "/app/db/url"])
        #expect(again.status != 0 && again.stderr.contains("not-found"))
        let bad = try agent.run(["set", "/bad//key", "x"])
        #expect(bad.status != 0 && bad.stderr.contains("invalid-key"))
        // A sync refused as a whole says why (it used to exit 1 in silence).
        let sync = try agent.run(["sync"])
        #expect(sync.status != 0 && sync.stderr.contains("no peers known"), "\(sync.stdout)\(sync.stderr)")

        let json = try agent.run(["get", "--json", "/app/empty"])
        let obj = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect(obj?["chain"] as? [String] == ["root"])
        #expect(obj?["state"] as? String == "synced")
        // The socket from the environment when no --control is given.
        let fromEnvironment = try cli.run(["get", "/app/empty"], environment: ["KVGOSSIP_CONTROL": agent.socket])
        #expect(fromEnvironment.status == 0, "\(fromEnvironment.stderr)")
        #expect(agent.stop() == 0)
        #expect(!FileManager.default.fileExists(atPath: agent.socket))
    }

    /// Until a node with peers completes a reconciliation every key is `unsynced`: the xattr-level
    /// state, `status` and the metrics agree on it.
    @Test func keysAreUnsyncedUntilTheFirstSyncAndStatusCountsThem() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let alone = try AgentProcess(cli: cli, name: "U", root: root, extraArgs: ["--key", "root.key"])
        #expect(try alone.run(["set", "/u/a", "1"]).status == 0)
        #expect(try alone.run(["set", "/u/b", "2"]).status == 0)
        #expect(alone.stop() == 0)
        // Restarted with a peer nobody answers at: nothing can be settled.
        let metricsPort = LoopbackPort.free()
        let waiting = try AgentProcess(cli: cli, name: "U", root: root, extraArgs: [
            "--key", "root.key", "--peer", "127.0.0.1:\(LoopbackPort.free())", "--metrics-listen", "127.0.0.1:\(metricsPort)",
        ])
        let status = try JSONSerialization.jsonObject(with: Data(try waiting.run(["status", "--json"]).stdout.utf8)) as? [String: Any]
        #expect(status?["dirty"] as? [String: Int] == ["unsynced": 2], "\(String(describing: status))")
        #expect(try waiting.run(["get", "--json", "/u/a"]).stdout.contains("\"state\" : \"unsynced\""))
        var metrics = ""
        Readiness.wait {
            metrics = (try? MetricsTests.http("GET", "/metrics", port: metricsPort)) ?? ""
            return metrics.contains("200 OK")
        }
        #expect(metrics.contains("\nkvgossip_synced 0\n"), "\(metrics)")
    }

    /// A value whose key is also a prefix of another key is hidden in the mount; status names it.
    @Test func statusListsShadowedValues() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let agent = try AgentProcess(cli: cli, root: root, extraArgs: ["--key", "root.key"])
        for key in ["/a", "/a/b/c", "/a-b", "/x/y", "/x/y/z", "/x", "/p/q"] {
            #expect(try agent.run(["set", key, "v"]).status == 0)
        }
        let status = try JSONSerialization.jsonObject(with: Data(try agent.run(["status", "--json"]).stdout.utf8)) as? [String: Any]
        #expect(status?["shadowed"] as? [String] == ["/a", "/x", "/x/y"])
        #expect(status?["records"] as? Int == 7)
    }

    @Test func generatedNodeKeyNeedsAGrant() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let agent = try AgentProcess(cli: cli, root: root)
        let keyFile = agent.data + "/node.key"
        let mode = try FileManager.default.attributesOfItem(atPath: keyFile)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let status = try agent.run(["status", "--json"])
        let node = (try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])?["node"] as? String
        #expect(node?.hasPrefix("ed25519:") == true)

        let refused = try agent.run(["set", "/app/x", "1"])
        #expect(refused.status != 0 && refused.stderr.contains("no-authority"))

        #expect(try cli.run(["grant", "--issuer-key", "root.key", "--to", node!, "--pattern", "/app/**", "--out", "node.grant"]).status == 0)
        let added = try agent.run(["grants", "add", "node.grant"])
        #expect(added.status == 0 && added.stdout.contains("added"))
        #expect(try agent.run(["set", "/app/x", "1"]).status == 0)
        #expect(try agent.run(["set", "/etc/x", "1"]).stderr.contains("no-authority"))
        let chain = try agent.run(["get", "--json", "/app/x"])
        #expect(chain.stdout.contains("/app/**"))
        #expect(try agent.run(["grants", "list"]).stdout.contains("/app/**"))
    }

    @Test func clientSignedWritesAreVerifiedLikePeers() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let alice = try cli.keygen("alice.key")
        #expect(try cli.run(["grant", "--issuer-key", "root.key", "--to", alice, "--pattern", "/team/**", "--out", "alice.grant"]).status == 0)
        #expect(try cli.run(["grant", "--issuer-key", "root.key", "--to", alice, "--pattern", "/other/**", "--out", "other.grant"]).status == 0)
        let agent = try AgentProcess(cli: cli, root: root, extraArgs: ["--key", "root.key"])

        #expect(try agent.run(["set", "--key-file", "alice.key", "--proof", "alice.grant", "/team/a", "v1"]).status == 0)
        #expect(try agent.run(["get", "/team/a"]).stdout == "v1")
        let noProof = try agent.run(["set", "--key-file", "alice.key", "/team/a", "v2"])
        #expect(noProof.status != 0 && noProof.stderr.contains("no-authority"))
        let wrongProof = try agent.run(["set", "--key-file", "alice.key", "--proof", "other.grant", "/team/a", "v3"])
        #expect(wrongProof.status != 0 && wrongProof.stderr.contains("no-authority"))
        #expect(try agent.run(["get", "/team/a"]).stdout == "v1")

        // Revoking the grant unsets the key and refuses later writes under it.
        let revoked = try agent.run(["revoke", "--key", "root.key", "alice.grant"])
        #expect(revoked.status == 0, "\(revoked.stderr)")
        #expect(revoked.stdout.contains("unset /team/a"))
        #expect(try agent.run(["get", "/team/a"]).status != 0)
        let after = try agent.run(["set", "--key-file", "alice.key", "--proof", "alice.grant", "/team/a", "v4"])
        #expect(after.status != 0 && after.stderr.contains("revoked"))
        let status = try agent.run(["status"]).stdout
        #expect(status.contains("no-authority=2") && status.contains("revoked=1"))

        // A stranger cannot revoke someone else's grant.
        _ = try cli.keygen("mallory.key")
        let forged = try agent.run(["revoke", "--key", "mallory.key", "other.grant"])
        #expect(forged.status != 0 && forged.stderr.contains("no-authority"))

        // Grants given together stand alone: the good one is kept, the revoked one is refused, and
        // the answer's reason is that refusal's (it was always no-authority).
        let added = try agent.run(["grants", "add", "other.grant", "alice.grant"])
        #expect(added.status != 0 && added.stderr.contains("revoked:") && !added.stderr.contains("no-authority"), "\(added)")
        #expect(added.stderr.contains("added"), "\(added)")
    }

    @Test func watchStreamsInitialStateThenChanges() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let agent = try AgentProcess(cli: cli, root: root, extraArgs: ["--key", "root.key"])
        try agent.run(["set", "/app/a", "1"])

        let watcher = Process()
        watcher.executableURL = URL(fileURLWithPath: CLIProcess.binary)
        watcher.arguments = ["watch", "/app/**", "--control", agent.socket]
        let out = OutputCollector()
        watcher.standardOutput = out.pipe
        try watcher.run()
        defer { kill(watcher.processIdentifier, SIGKILL); watcher.waitUntilExit() }
        func waitFor(_ text: String) -> Bool { out.wait(timeout: 10) { $0.contains(text) } }
        #expect(waitFor("/app/a = 1"))
        try agent.run(["set", "/app/b", "2"])
        try agent.run(["set", "/elsewhere", "x"])
        try agent.run(["rm", "/app/a"])
        #expect(waitFor("/app/b = 2"))
        #expect(waitFor("/app/a removed"))
        #expect(!out.output.contains("/elsewhere"))
    }

    @Test func tcpListenerAcceptsOnlyClientSignedWrites() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let port = LoopbackPort.free()
        let agent = try AgentProcess(cli: cli, root: root, extraArgs: ["--key", "root.key", "--control-listen", "127.0.0.1:\(port)"])
        let remote = ["--control", "127.0.0.1:\(port)", "--control-key", "root.key", "--root", root]
        #expect(Readiness.wait { (try? cli.run(["status"] + remote).status) == 0 }, "the TCP listener answers")
        let mint = try cli.run(["set", "/a", "1"] + remote)
        #expect(mint.status != 0 && mint.stderr.contains("local socket"))
        let signed = try cli.run(["set", "--key-file", "root.key", "/a", "2"] + remote)
        #expect(signed.status == 0, "\(signed.stderr)")
        #expect(try cli.run(["get", "/a"] + remote).stdout == "2")
        _ = agent
    }

    @Test func restartKeepsTheTreeAndMalformedInputIsHarmless() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        var agent = try AgentProcess(cli: cli, root: root, extraArgs: ["--key", "root.key"])
        for i in 0..<20 { try agent.run(["set", "/k/\(i)", "v\(i)"]) }
        let hash = try agent.run(["status", "--json"]).stdout
        let before = (try JSONSerialization.jsonObject(with: Data(hash.utf8)) as? [String: Any])?["treeHash"] as? String

        // Garbage, a huge length prefix and a wrong JSON shape: the agent must stay up.
        // Each connection is closed by the agent once it has read the bad input.
        for garbage in [Array("hello\n".utf8), [0xff, 0xff, 0xff, 0xff, 1, 2], [0, 0, 0, 3] + Array("{x}".utf8)] {
            guard let connection = RawSocket(unixPath: agent.socket) else {
                Issue.record("the control socket refused a connection")
                continue
            }
            connection.send(garbage)
            #expect(connection.readUntilClosed() != nil, "the agent kept a connection with bad input open")
        }
        #expect(try agent.run(["get", "/k/3"]).stdout == "v3")

        agent.stop()
        agent = try AgentProcess(cli: cli, root: root, extraArgs: ["--key", "root.key"])
        let after = (try JSONSerialization.jsonObject(with: Data(try agent.run(["status", "--json"]).stdout.utf8)) as? [String: Any])?["treeHash"] as? String
        #expect(after == before)
        #expect(try agent.run(["get", "/k/19"]).stdout == "v19")

        // A second agent on the same socket is refused instead of stealing it.
        let dup = try? AgentProcess(cli: cli, name: "agent", root: root, extraArgs: ["--key", "root.key"])
        #expect(dup == nil)
    }

    /// The control socket is mode 0660 however permissive the agent's umask (it is bound under a
    /// name of its own and renamed into place once restricted), and no staging name is left behind
    /// (Docs/security.md §The control socket).
    @Test func theControlSocketIsMode0660EvenUnderAUmaskOfZero() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let data = cli.path("agent-data"), socket = cli.path("agent.sock")
        let agent = try AgentProcess(
            cli: cli, name: "agent", data: data, socket: socket,
            arguments: ["-c", "umask 000; exec \"$0\" \"$@\"", CLIProcess.binary, "agent", "--data", data, "--root", root, "--key", "root.key",
                        "--control", socket, "--no-serf", "--listen", "127.0.0.1:\(LoopbackPort.free())"],
            executable: "/bin/sh")
        var info = stat()
        #expect(lstat(socket, &info) == 0)
        #expect(info.st_mode & S_IFMT == S_IFSOCK)
        #expect(info.st_mode & 0o777 == 0o660, "mode \(String(info.st_mode & 0o777, radix: 8))")
        if let group = getgrnam("kvgossip") { #expect(info.st_gid == group.pointee.gr_gid) }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: cli.directory.path).filter { $0.hasSuffix(".binding") }
        #expect(leftovers.isEmpty, "\(leftovers)")
        #expect(try agent.run(["set", "/a", "1"]).status == 0)
        #expect(agent.stop() == 0)
    }

    /// Output that cannot be written (a full disk, a reader that went away) and input that cannot
    /// be read (a directory, more than a value may hold) end a command with status 1 and a sentence,
    /// never a trap; output lost to a full disk is never status 0.
    @Test func unwritableOutputAndUnreadableInputFailWithASentence() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let agent = try AgentProcess(cli: cli, root: root, extraArgs: ["--key", "root.key"])
        func sh(_ command: String) throws -> CLIProcess.Result {
            try MountAgentTests.shell("\(CLIProcess.binary) \(command.replacingOccurrences(of: "@", with: "--control \(agent.socket)"))", in: cli)
        }
        #expect(try sh("set /big @ < \(CLIProcess.binary)").status != 0, "a binary over 1 MiB is over the limit")
        #expect(try MountAgentTests.shell("head -c 100000 /dev/urandom > big.bin", in: cli).status == 0)
        #expect(try sh("set /big @ < big.bin").status == 0)
        for command in ["get /big @ > /dev/full", "get --json /big @ > /dev/full", "ls @ > /dev/full", "status @ > /dev/full"] {
            let full = try sh(command)
            #expect(full.status == 1 && full.stderr.contains("No space left on device"), "\(command): \(full)")
        }
        // A reader that stops after one byte: the command ends quietly.
        #expect(try sh("get /big @ 2> closed.txt | head -c1 > /dev/null").status == 0)
        #expect(cli.read("closed.txt") == "", "\(cli.read("closed.txt") ?? "")")
        let directory = try sh("set /d @ < /tmp")
        #expect(directory.status == 1 && directory.stderr.contains("Is a directory"), "\(directory)")
        let huge = try sh("set /h @ < /dev/zero")
        #expect(huge.status == 1 && huge.stderr.contains("over the limit"), "\(huge)")
        #expect(try agent.run(["get", "/h"]).status != 0 && agent.run(["get", "/d"]).status != 0)
    }

    /// `sync` with a peer that cannot be reached, or that is not a KVGossip peer, says why in
    /// words: the system's reason, or what the other side's first bytes read.
    @Test func syncSaysWhyAPeerCouldNotBeSynced() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let agent = try AgentProcess(cli: cli, root: root, extraArgs: ["--key", "root.key"])
        let closed = LoopbackPort.free()
        let refused = try agent.run(["sync", "--peer", "127.0.0.1:\(closed)"])
        #expect(refused.status == 1 && refused.stdout.contains("cannot connect to 127.0.0.1:\(closed): Connection refused"), "\(refused)")
        let web = LoopbackServer { fd, _ in
            _ = RawSocket(borrowing: fd, timeout: 5).send(Array("HTTP/1.1 400 Bad Request\r\n\r\n".utf8))
        }
        defer { web.stop() }
        let http = try agent.run(["sync", "--peer", "127.0.0.1:\(web.port)"])
        #expect(http.status == 1 && http.stdout.contains(#"its first bytes read "HTTP""#), "\(http)")
    }

    /// A command waits a bounded time for its answer ($KVGOSSIP_TIMEOUT): an agent that is stopped
    /// still accepts the connection, and the command used to wait for good.
    @Test func aCommandGivesUpOnAnAgentThatDoesNotAnswer() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let agent = try AgentProcess(cli: cli, root: root, extraArgs: ["--key", "root.key"])
        kill(agent.pid, SIGSTOP)
        defer { kill(agent.pid, SIGCONT) }
        // Under timeout(1), so a command that still waits for good fails this test instead of hanging it.
        func bounded(_ command: String) throws -> CLIProcess.Result {
            try MountAgentTests.shell("KVGOSSIP_TIMEOUT=1 timeout 60 \(CLIProcess.binary) \(command) --control \(agent.socket)", in: cli)
        }
        let status = try bounded("status")
        #expect(status.status == 1 && status.stderr.contains("did not answer status"), "\(status)")
        let set = try bounded("set /late v")
        #expect(set.status == 1 && set.stderr.contains("the write may still be applied"), "\(set)")
    }

    /// An agent that refuses its control socket path leaves the path as it found it: another
    /// agent's live socket keeps answering, and a file in the way keeps its bytes. Both used to be
    /// unlinked on the way out; and an agent that stops removes the socket it put there.
    @Test func anAgentThatRefusesTheSocketPathLeavesItAlone() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let first = try AgentProcess(cli: cli, root: root, extraArgs: ["--key", "root.key"])
        try "precious\n".write(toFile: cli.path("precious.txt"), atomically: true, encoding: .utf8)
        for (name, path) in [("second", first.socket), ("third", cli.path("precious.txt"))] {
            let refused = try cli.run([
                "agent", "--data", cli.path("\(name)-data"), "--root", root, "--control", path, "--no-serf",
                "--listen", "127.0.0.1:\(LoopbackPort.free())",
            ])
            #expect(refused.status != 0, "\(name) started on \(path)")
        }
        #expect(try first.run(["set", "/still", "here"]).status == 0, "the first agent's socket still answers")
        #expect(cli.read("precious.txt") == "precious\n")
        #expect(first.stop() == 0)
        #expect(!FileManager.default.fileExists(atPath: first.socket), "a stopped agent removes its own socket")
    }

    /// A stop by SIGTERM or SIGINT closes the store, the writer last, so SQLite copies the
    /// write-ahead log into the database file and removes it and its index: the file alone is a
    /// whole copy of the tree (Docs/operations.md §Backup and restore). Before, the agent exited
    /// with the log in place, and a copy of `kvgossip.sqlite` alone held none of these writes.
    @Test(arguments: [SIGTERM, SIGINT]) func aStoppedAgentLeavesEveryWriteInTheDatabaseFile(signal: Int32) throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let agent = try AgentProcess(cli: cli, root: root, extraArgs: ["--key", "root.key"])
        for i in 0..<20 { try agent.run(["set", "/k/\(i)", "v\(i)"]) }
        #expect(FileManager.default.fileExists(atPath: "\(agent.data)/kvgossip.sqlite-wal"), "a running agent writes through its log")
        #expect(agent.stop(signal: signal) == 0)
        #expect(!FileManager.default.fileExists(atPath: "\(agent.data)/kvgossip.sqlite-wal"), "the log outlived the agent")
        #expect(!FileManager.default.fileExists(atPath: "\(agent.data)/kvgossip.sqlite-shm"), "the log's index outlived the agent")
        #expect(!agent.log.contains("did not close cleanly"), "\(agent.log)")

        let copy = cli.path("copy")
        try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(agent.data)/kvgossip.sqlite", toPath: "\(copy)/kvgossip.sqlite")
        let log = try cli.run(["log", "--data", copy, "--values", "/k/19"])
        #expect(log.status == 0 && log.stdout.contains("v19"), "\(log.stdout)\(log.stderr)")
    }
}

@Suite(.integration) struct AgentConfigTests {
    @Test func checkConfigMergesFileAndFlagsAndListsEveryProblem() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let config = """
            {"root": "\(root)", "data": "/tmp/from-file", "listen": "127.0.0.1:9000", "peers": ["10.0.0.1:7947"], "syncInterval": 12}
            """
        try config.write(toFile: cli.path("agent.json"), atomically: true, encoding: .utf8)
        let ok = try cli.run(["agent", "--config", "agent.json", "--listen", "127.0.0.1:9100", "--check-config"])
        #expect(ok.status == 0, "\(ok.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(ok.stdout.replacingOccurrences(of: "configuration OK", with: "").utf8)) as? [String: Any]
        #expect(json?["data"] as? String == "/tmp/from-file")
        #expect(json?["listen"] as? String == "127.0.0.1:9100")  // the flag wins
        #expect(json?["syncInterval"] as? Double == 12)
        #expect(json?["control"] as? String == "/run/kvgossip/control.sock")  // the default fills the rest
        #expect(json?["mountPageCache"] as? Bool == false)
        // The bounds Docs/history.md §Bounds and Docs/operations.md §Control API limits give as
        // defaults, as the agent would use them.
        #expect(json?["historyVersions"] as? Int == 32 && json?["historyBytes"] as? Int == 64 << 20, "\(ok.stdout)")
        #expect(json?["controlConnections"] as? Int == 256 && json?["controlWatches"] as? Int == 20_000, "\(ok.stdout)")
        let cached = try cli.run(["agent", "--config", "agent.json", "--mount-page-cache", "--check-config"])
        #expect((try JSONSerialization.jsonObject(with: Data(cached.stdout.replacingOccurrences(of: "configuration OK", with: "").utf8))
            as? [String: Any])?["mountPageCache"] as? Bool == true)

        try #"{"root": "nope", "listen": "nowhere", "peers": ["x"], "logLevel": "loud"}"#.write(toFile: cli.path("bad.json"), atomically: true, encoding: .utf8)
        let bad = try cli.run(["agent", "--config", "bad.json", "--check-config"])
        #expect(bad.status != 0)
        for field in ["root:", "listen:", "peers:", "logLevel:"] { #expect(bad.stderr.contains(field), "missing \(field) in \(bad.stderr)") }

        try "{ not json".write(toFile: cli.path("broken.json"), atomically: true, encoding: .utf8)
        let broken = try cli.run(["agent", "--config", "broken.json", "--check-config"])
        #expect(broken.status != 0 && broken.stderr.contains("not valid JSON"))
        let noRoot = try cli.run(["agent", "--check-config"])
        #expect(noRoot.status != 0 && noRoot.stderr.contains("root: required"))
        // A misspelt field is named, not ignored (it would leave its setting at the default).
        try #"{"root": "x", "mountUid": 5}"#.write(toFile: cli.path("typo.json"), atomically: true, encoding: .utf8)
        let typo = try cli.run(["agent", "--config", "typo.json", "--check-config"])
        #expect(typo.status != 0 && typo.stderr.contains(#"unknown field "mountUid""#) && typo.stderr.contains("mountUID"), "\(typo)")
        let missing = try cli.run(["agent", "--config", cli.path("absent.json"), "--check-config"])
        #expect(missing.status != 0 && missing.stderr.contains("No such file or directory") && !missing.stderr.contains("Domain"), "\(missing)")
    }
}
