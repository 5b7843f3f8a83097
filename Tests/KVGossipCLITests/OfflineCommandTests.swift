import Foundation
import KVGossipTestSupport
import KVGossipTestTraits
import Testing

/// The offline commands, run as the real binary: what an operator types.
@Suite(.integration) struct OfflineCommandTests {
    @Test func versionNamesTheReleaseAndTheSyncProtocol() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let r = try cli.run(["--version"])
        #expect(r.status == 0 && r.stdout.hasPrefix("kvgossip 0.") && r.stdout.contains("sync protocol 2"), "\(r)")
    }

    @Test func keygenWritesA0600FileAndPrintsThePublicKey() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let r = try cli.run(["keygen", "--out", "root.key"])
        #expect(r.status == 0, "\(r.stderr)")
        let pub = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(pub.hasPrefix("ed25519:") && pub.count == 51)
        let mode = try FileManager.default.attributesOfItem(atPath: cli.path("root.key"))[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(try cli.run(["pubkey", "--key", "root.key"]).stdout == r.stdout)

        let again = try cli.run(["keygen", "--out", "root.key"])
        #expect(again.status != 0 && again.stderr.contains("already exists"))
    }

    @Test func openKeyFileIsRefusedLikeSSH() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        try cli.run(["keygen", "--out", "k"])
        chmod(cli.path("k"), 0o644)
        let r = try cli.run(["pubkey", "--key", "k"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("accessible by group or others"))
    }

    @Test func grantChainAndInclusionRefusal() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        try cli.run(["keygen", "--out", "root.key"])
        let team = try cli.run(["keygen", "--out", "team.key"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let ci = try cli.run(["keygen", "--out", "ci.key"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)

        let g1 = try cli.run(["grant", "--issuer-key", "root.key", "--to", team, "--pattern", "/app/**", "--delegate", "--expires", "90d", "--out", "team.grant"])
        #expect(g1.status == 0, "\(g1.stderr)")
        let g2 = try cli.run(["grant", "--issuer-key", "team.key", "--to", ci, "--pattern", "/app/*/version", "--proof", "team.grant", "--out", "ci.grant"])
        #expect(g2.status == 0, "\(g2.stderr)")
        #expect(g2.stdout.contains("with 1 proof grant"))

        let wide = try cli.run(["grant", "--issuer-key", "team.key", "--to", ci, "--pattern", "/**", "--proof", "team.grant", "--out", "wide.grant"])
        #expect(wide.status != 0)
        #expect(wide.stderr.contains("pattern /** reaches keys outside"))
        #expect(!FileManager.default.fileExists(atPath: cli.path("wide.grant")))

        let noDelegate = try cli.run(["grant", "--issuer-key", "ci.key", "--to", team, "--pattern", "/app/x/version", "--proof", "ci.grant", "--out", "x.grant"])
        #expect(noDelegate.status != 0 && noDelegate.stderr.contains("delegation"))

        let inspect = try cli.run(["inspect", "--json", "ci.grant"])
        #expect(inspect.status == 0, "\(inspect.stderr)")
        let items = try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [[String: Any]]
        #expect(items?.count == 2)
        #expect(items?.first?["patterns"] as? [String] == ["/app/*/version"])
        #expect(items?.first?["signatureValid"] as? Bool == true)
        #expect(items?.last?["mayDelegate"] as? Bool == true)
        // --expires 90d: the team's grant ends 90 days after it starts.
        let dates = ["notBefore", "expires"].map { field in (items?.last?[field] as? String).flatMap { try? Date($0, strategy: .iso8601.year().month().day().time(includingFractionalSeconds: true)) } }
        #expect(dates[0] != nil && dates[1].map { $0.timeIntervalSince(dates[0]!) } == 90 * 86_400, "\(String(describing: items?.last))")
    }

    @Test func inspectFlagsATamperedGrant() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        try cli.run(["keygen", "--out", "root.key"])
        let a = try cli.run(["keygen", "--out", "a.key"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try cli.run(["grant", "--issuer-key", "root.key", "--to", a, "--pattern", "/x/**", "--out", "a.grant"])
        var text = try String(contentsOfFile: cli.path("a.grant"), encoding: .utf8)
        #expect(try cli.run(["inspect", "a.grant"]).status == 0)
        // Flip a character in the middle of the base64 body (inside the signed pattern bytes).
        var lines = text.split(separator: "\n").map(String.init)
        var chars = Array(lines[2])
        chars[10] = chars[10] == "A" ? "B" : "A"
        lines[2] = String(chars)
        text = lines.joined(separator: "\n") + "\n"
        try text.write(toFile: cli.path("bad.grant"), atomically: true, encoding: .utf8)
        let r = try cli.run(["inspect", "bad.grant"])
        #expect(r.status != 0)
        #expect(r.stdout.contains("INVALID") || r.stderr.contains("malformed"))
    }

    /// `inspect` marks a grant that has expired, and with --root refuses one of another cluster.
    @Test func inspectMarksAnExpiredGrantAndOneOfAnotherCluster() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        try cli.run(["keygen", "--out", "root.key"])
        let other = try cli.keygen("other.key")
        let a = try cli.keygen("a.key")
        #expect(try cli.run(["grant", "--issuer-key", "root.key", "--to", a, "--pattern", "/x/**", "--expires", "1s", "--out", "a.grant"]).status == 0)
        #expect(Readiness.wait { (try? cli.run(["inspect", "a.grant"]))?.stdout.contains("(EXPIRED)") == true }, "never marked expired")
        #expect(try cli.run(["inspect", "a.grant"]).status == 0, "an expired grant's signature still verifies")
        let elsewhere = try cli.run(["inspect", "--root", other, "a.grant"])
        #expect(elsewhere.status == 1 && elsewhere.stderr.contains("not the one of --root"), "\(elsewhere)")
    }

    @Test func inspectShowsOnlyThePublicHalfOfASecretKey() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let pub = try cli.run(["keygen", "--out", "k"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let secret = try String(contentsOfFile: cli.path("k"), encoding: .utf8)
        let r = try cli.run(["inspect", "k"])
        #expect(r.status == 0 && r.stdout.contains(pub))
        #expect(!r.stdout.contains(String(secret.split(separator: ":").last!.prefix(20))))
    }

    @Test(arguments: ["keygen", "pubkey", "grant", "inspect"])
    func everySubcommandHasHelp(_ sub: String) throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let r = try cli.run([sub, "--help"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("USAGE"))
    }

    /// The argument parser wraps help to the terminal; a raw line break inside a paragraph of an
    /// overview or discussion breaks the sentence wherever the source did ("serves the control
    /// API on" / "a Unix socket"). At 200 columns a line the parser wrapped is nearly 200 wide, so
    /// a short line followed by more prose is a break in the source. Indented lines (examples,
    /// tables) keep their breaks.
    @Test func helpParagraphsAreWrappedByTheParserNotTheSource() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let top = try cli.run(["--help"], environment: ["COLUMNS": "200"])
        let subcommands = top.stdout.components(separatedBy: "SUBCOMMANDS:").last!
            .split(separator: "\n").compactMap { line -> String? in
                guard line.hasPrefix("  "), let word = line.split(separator: " ").first else { return nil }
                return word.allSatisfy { $0.isLowercase || $0 == "-" } ? String(word) : nil
            }
        #expect(subcommands.count >= 15, "subcommands found: \(subcommands)")
        for command in [[]] + subcommands.map({ [$0] }) {
            let help = try cli.run(command + ["--help"], environment: ["COLUMNS": "200"])
            #expect(help.status == 0)
            let prose = help.stdout.components(separatedBy: "USAGE:").first!.components(separatedBy: "\n")
            for (line, next) in zip(prose, prose.dropFirst())
            where !line.isEmpty && !line.hasPrefix(" ") && !next.isEmpty && !next.hasPrefix(" ") {
                #expect(line.count > 150, "kvgossip \(command.joined()) --help breaks a paragraph after: \(line)")
            }
        }
    }

    @Test func badInputGivesAClearErrorAndNonZeroExit() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        try cli.run(["keygen", "--out", "root.key"])
        let badKey = try cli.run(["grant", "--issuer-key", "root.key", "--to", "rsa:xyz", "--pattern", "/a", "--out", "g"])
        #expect(badKey.status != 0 && badKey.stderr.contains("ed25519:"))
        let badPattern = try cli.run(["grant", "--issuer-key", "root.key", "--to", "ed25519:" + String(repeating: "A", count: 43), "--pattern", "/a/[x]", "--out", "g"])
        #expect(badPattern.status != 0 && badPattern.stderr.contains("invalid pattern"))
        let missing = try cli.run(["inspect", "nope"])
        #expect(missing.status != 0 && missing.stderr.contains("cannot read"))
        // A proof file that holds no grant is named, not skipped; --proof needs --key-file.
        try "garbage\n".write(toFile: cli.path("garbage"), atomically: true, encoding: .utf8)
        let noGrant = try cli.run(["grant", "--issuer-key", "root.key", "--to", "ed25519:" + String(repeating: "A", count: 43), "--pattern", "/a", "--proof", "garbage", "--out", "g"])
        #expect(noGrant.status != 0 && noGrant.stderr.contains("garbage holds no grant"), "\(noGrant)")
        let loneProof = try cli.run(["set", "/a", "v", "--proof", "garbage"])
        #expect(loneProof.status != 0 && loneProof.stderr.contains("--proof goes with --key-file"), "\(loneProof)")
        // Numbers past what a setting can hold are named, not trapped on.
        let tooLong = try cli.run(["grant", "--issuer-key", "root.key", "--to", "ed25519:" + String(repeating: "A", count: 43), "--pattern", "/a", "--expires", "213503982334d", "--out", "g"])
        #expect(tooLong.status != 0 && tooLong.stderr.contains("more than 100 years"), "\(tooLong)")
        let root = try cli.run(["pubkey", "--key", "root.key"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let infinite = try cli.run(["agent", "--data", cli.path("d"), "--root", root, "--sync-interval", "inf", "--max-skew", "nan", "--check-config"])
        #expect(infinite.status == 1 && infinite.stderr.contains("syncInterval: must be positive") && infinite.stderr.contains("maxSkewSeconds: must be positive"), "\(infinite)")
        let huge = try cli.run(["agent", "--data", cli.path("d"), "--root", root, "--max-skew", "1e308", "--no-serf", "--control", cli.path("a.sock")])
        #expect(huge.status == 1 && huge.stderr.contains("maxSkewSeconds"), "\(huge)")
    }

    /// Bad input found while a subcommand runs (not while its arguments are parsed) is shown with
    /// that subcommand's usage and status 64, as a parsing error is, not with the usage of
    /// `kvgossip` itself.
    @Test func badInputFoundWhileRunningShowsTheSubcommandsUsage() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        try cli.run(["keygen", "--out", "root.key"])
        let root = try cli.run(["pubkey", "--key", "root.key"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try cli.run(["grant", "--issuer-key", "root.key", "--to", root, "--pattern", "/a", "--out", "a.grant"])
        let badRoot = try cli.run(["inspect", "a.grant", "--root", "ed25519:xx"])
        #expect(badRoot.status == 64, "\(badRoot)")
        #expect(badRoot.stderr.contains("Error: --root: public key"), "\(badRoot)")
        #expect(badRoot.stderr.contains("Usage: kvgossip inspect <FILE>") && badRoot.stderr.contains("See 'kvgossip inspect --help'"), "\(badRoot)")
        let badKey = try cli.run(["log", "a//b"])
        #expect(badKey.status == 64 && badKey.stderr.contains("Usage: kvgossip log <target>"), "\(badKey)")
    }

    /// Failures of the system say what failed in the system's words, not as a dump of Foundation's
    /// or NIO's error values.
    @Test func aDataDirectoryOrAgentOutOfReachIsNamedWithTheSystemsReason() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        _ = FileManager.default.createFile(atPath: cli.path("plain"), contents: Data())
        let data = cli.path("plain/data")
        let agent = try cli.run(["agent", "--data", data, "--root", root, "--control", cli.path("a.sock"), "--no-serf"])
        #expect(agent.status != 0 && agent.stderr.contains("cannot create the data directory \(data): Not a directory"), "\(agent.stderr)")
        #expect(!agent.stderr.contains("Domain"), "\(agent.stderr)")

        let keygen = try cli.run(["keygen", "--out", cli.path("plain/key")])
        #expect(keygen.status != 0 && keygen.stderr.contains("cannot write \(cli.path("plain/key")): Not a directory"), "\(keygen.stderr)")

        // A cluster secret others may read is refused, as a secret key file is.
        #expect(try cli.run(["keygen", "--cluster-secret", "--out", "secret"]).status == 0)
        chmod(cli.path("secret"), 0o640)
        let open = try cli.run(["agent", "--data", cli.path("d"), "--root", root, "--control", cli.path("b.sock"), "--no-serf", "--cluster-secret", "secret"])
        #expect(open.status != 0 && open.stderr.contains("accessible by group or others"), "\(open.stderr)")

        // A port another program holds: which setting, and the system's reason.
        let taken = LoopbackServer { _, _ in }
        defer { taken.stop() }
        let busy = try cli.run(["agent", "--data", cli.path("busy"), "--root", root, "--control", cli.path("c.sock"), "--no-serf", "--listen", "127.0.0.1:\(taken.port)"])
        #expect(busy.status != 0 && busy.stderr.contains("cannot listen on 127.0.0.1:\(taken.port) (listen): Address already in use"), "\(busy.stderr)")
        #expect(!busy.stderr.contains("errno"), "\(busy.stderr)")

        let get = try cli.run(["get", "/a", "--control", cli.path("nobody.sock")])
        #expect(get.status != 0 && get.stderr.contains("cannot reach the agent at \(cli.path("nobody.sock")): No such file or directory"), "\(get.stderr)")
        #expect(!get.stderr.contains("errno"), "\(get.stderr)")
    }

    /// `set` without a value reads standard input; at a terminal it says so first, where it would
    /// otherwise sit silent until Ctrl-D. From a pipe it says nothing.
    @Test func setReadingFromATerminalSaysSo() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let socket = cli.path("nobody.sock")
        // script(1) (util-linux, on every Debian) runs the command on a terminal of its own and
        // types what it reads: a line, then the terminal's end of input (Ctrl-D at a line's start).
        let (status, typed) = try ProgramRun.combined(
            "/usr/bin/script", ["-qec", "\(CLIProcess.binary) set /a --control \(socket)", "/dev/null"], input: Data("v\n\u{4}".utf8))
        #expect(typed.contains("reading the value of /a from standard input; end it with Ctrl-D"), "\(typed)")
        // The value was read to its end, then the missing agent reported.
        #expect(status != 0 && typed.contains("cannot reach the agent"), "\(typed)")

        let piped = Pipe()
        try piped.fileHandleForWriting.write(contentsOf: Data("v\n".utf8))
        try piped.fileHandleForWriting.close()
        let fromPipe = try cli.run(["set", "/a", "--control", socket], standardInput: piped)
        #expect(!fromPipe.stderr.contains("standard input") && fromPipe.stderr.contains("cannot reach the agent"), "\(fromPipe)")
    }
}
