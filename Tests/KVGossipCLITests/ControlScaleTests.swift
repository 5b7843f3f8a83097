import Foundation
import KVGossipCore
import KVGossipTestSupport
import KVGossipTestTraits
import Testing

/// Answers of any size through the real CLI and a real agent: a 50,000-key tree (generated
/// straight into the store) lists and watches completely, in pages.
@Suite(.serialized, .integration) struct ControlScaleTests {
    static let root = SigningKey(seed: [UInt8](repeating: 7, count: 32))!
    static let keys = 50_000

    /// Fills `cli`'s `agent-data` (the default agent's data directory) with `count` keys below
    /// /big and writes the root's key file as `root.key`.
    static func bigTree(_ cli: CLIProcess, count: Int) throws {
        try TreeGenerator.fill(directory: cli.path("agent-data"), root: root, count: count)
        try writeRootKey(cli)
    }

    static func writeRootKey(_ cli: CLIProcess) throws {
        guard FileManager.default.createFile(
            atPath: cli.path("root.key"), contents: Data(SecretKeyFile.render(root).utf8), attributes: [.posixPermissions: 0o600])
        else { throw CLIError("cannot write root.key") }
    }

    static var expectedKeys: [String] { (0..<keys).map { TreeGenerator.key($0, under: "/big") } }

    @Test func fiftyThousandKeysListAndWatchCompletely() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        try Self.bigTree(cli, count: Self.keys)
        let agent = try AgentProcess(cli: cli, root: Self.root.publicKey.text, extraArgs: ["--key", "root.key"])

        let ls = try agent.run(["ls", "/big"])
        #expect(ls.status == 0, "\(ls.stderr)")
        let listed = ls.stdout.split(separator: "\n").map(String.init)
        #expect(listed.count == Self.keys)
        #expect(listed == Self.expectedKeys, "every key once, in key order")

        // --json streams one array whatever its size; a page boundary falls inside this one.
        let json = try agent.run(["ls", "--json", "/big/d0001"])
        let array = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]]
        #expect(array?.count == 1_000)
        #expect(array?.first?["key"] as? String == TreeGenerator.key(1_000, under: "/big"))
        #expect(array?.first?["encoded"] == nil, "a record's value travels once")

        // A pattern that matches a few keys far apart still lists them all (pages may come back short).
        let sparse = try agent.run(["ls", "/big/*/k00?9999"])
        #expect(sparse.out.split(separator: "\n").count == 5, "\(sparse.stdout) \(sparse.stderr)")

        // A watch of the prefix gets the whole initial state.
        let out = OutputCollector()
        let watcher = Process()
        watcher.executableURL = URL(fileURLWithPath: CLIProcess.binary)
        watcher.arguments = ["watch", "/big/", "--control", agent.socket]
        watcher.standardOutput = out.pipe
        try watcher.run()
        defer { watcher.stop(signal: SIGKILL, grace: 5) }
        let complete = out.wait(timeout: 300) { $0.utf8.count { $0 == UInt8(ascii: "\n") } >= Self.keys }
        #expect(complete, "the watch printed \(out.output.utf8.count { $0 == UInt8(ascii: "\n") }) of \(Self.keys) lines")
        let lines = out.output.split(separator: "\n")
        #expect(lines.first == "\(TreeGenerator.key(0, under: "/big")) = \(TreeGenerator.value(0))")
        #expect(lines.dropFirst(Self.keys - 1).first == "\(TreeGenerator.key(Self.keys - 1, under: "/big")) = \(TreeGenerator.value(Self.keys - 1))")
        #expect(Set(lines.prefix(Self.keys)).count == Self.keys)

        let status = try JSONSerialization.jsonObject(with: Data(try agent.run(["status", "--json"]).stdout.utf8)) as? [String: Any]
        #expect(status?["records"] as? Int == Self.keys)
        #expect(status?["shadowedTotal"] as? Int == 0)
    }

    /// A list request that does not page (no `limit`, as clients before paging sent it) gets the
    /// whole answer or a refusal, never a silent part of it.
    @Test func anUnpagedListIsAnsweredWholeOrRefused() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        try Self.bigTree(cli, count: 1_500)
        let agent = try AgentProcess(cli: cli, root: Self.root.publicKey.text, extraArgs: ["--key", "root.key"])
        let small = Readiness.controlRequest(at: agent.socket, json: #"{"id":5,"op":"list","prefix":"/big/d0000/k0000007"}"#)
        #expect(small?.contains(#""records":[{"#) == true && small?.contains("next") == false, "\(small ?? "nil")")
        let big = Readiness.controlRequest(at: agent.socket, json: #"{"id":6,"op":"list","prefix":"/big"}"#)
        #expect(big?.contains(#""reason":"too-large""#) == true, "\(big?.prefix(300) ?? "nil")")
        let paged = Readiness.controlRequest(at: agent.socket, json: #"{"id":7,"op":"list","prefix":"/big","limit":10}"#)
        #expect(paged?.contains(#""next":"/big/d0000/k0000009""#) == true, "\(paged?.prefix(300) ?? "nil")")
    }

    /// `status` keeps its list of shadowed values current from the commits alone: values appear in
    /// it and leave it as keys below them come and go, and past 100 it lists the first 100 in key
    /// order with the total.
    @Test func shadowedValuesFollowWritesAndAreCappedWithATotal() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        try Self.writeRootKey(cli)
        let agent = try AgentProcess(cli: cli, root: Self.root.publicKey.text, extraArgs: ["--key", "root.key"])
        func shadowed() throws -> (keys: [String], total: Int?) {
            let status = try JSONSerialization.jsonObject(with: Data(try agent.run(["status", "--json"]).stdout.utf8)) as? [String: Any]
            return (status?["shadowed"] as? [String] ?? [], status?["shadowedTotal"] as? Int)
        }
        #expect(try agent.run(["set", "/a", "v"]).status == 0)
        #expect(try agent.run(["set", "/a/b/c", "v"]).status == 0)
        #expect(try shadowed().keys == ["/a"])
        #expect(try agent.run(["rm", "/a/b/c"]).status == 0)
        #expect(try shadowed().keys == [], "no value below /a any more")
        #expect(try agent.run(["set", "/a/b", "v"]).status == 0)
        #expect(try agent.run(["rm", "/a"]).status == 0)
        #expect(try shadowed().keys == [], "a deleted value is not shadowed")

        // 150 shadowed values, written over one connection.
        guard let socket = RawSocket(unixPath: agent.socket, timeout: 30) else { throw CLIError("cannot connect") }
        var id = 10
        for i in 0..<150 {
            for key in ["/s/\(1000 + i)", "/s/\(1000 + i)/x"] {
                id += 1
                socket.sendFrame(#"{"id":\#(id),"op":"mint","key":"\#(key)","value":"dg=="}"#)
                _ = socket.readFrame()
            }
        }
        let many = try shadowed()
        #expect(many.total == 150)
        #expect(many.keys == (1000..<1100).map { "/s/\($0)" })
        let text = try agent.run(["status"]).stdout
        #expect(text.contains("/s/1099 and 50 more (values hidden by a directory of the same name)"), "\(text)")
    }
}
