import Foundation
import KVGossipTestSupport
import KVGossipTestTraits
import Testing

/// Every acknowledged write is on disk before the acknowledgement (Docs/contract.md §Storage).
///
/// The agent runs under an LD_PRELOAD shim (Fixtures/fsync-log.c) that logs each fsync and
/// fdatasync with the synced file's path before returning it to SQLite. For every way a write is
/// acknowledged — a control `mint` (`kvgossip set`), a client-signed `put`, a delete, a save through
/// the mount returning from close(), records a peer pushed and was told were applied — the store's
/// write-ahead log must have been synced between the request and the acknowledgement. A store left at
/// `synchronous = NORMAL` syncs the WAL only at checkpoints and fails every one of these.
@Suite(.serialized, .integration) struct FsyncBeforeAcknowledgementTests {
    /// WAL syncs between a request and its acknowledgement, per kind of write.
    final class Tally {
        let log: FsyncLog
        var counts: [(String, Int)] = []
        init(_ log: FsyncLog) { self.log = log }

        /// Runs `write`, which returns once the write was acknowledged, and expects the WAL synced meanwhile.
        func expectSynced(_ label: String, sourceLocation: SourceLocation = #_sourceLocation, _ write: () throws -> Void) rethrows {
            let before = log.walSyncs
            try write()
            let synced = log.walSyncs - before
            counts.append((label, synced))
            #expect(synced > 0, "\(label) was acknowledged without a sync of the WAL", sourceLocation: sourceLocation)
        }

        var summary: String { counts.map { "\($0.0): \($0.1)" }.joined(separator: ", ") }
    }

    /// A fresh directory with a root key and the fsync-log shim built in it; `tearDown` removes it.
    struct Stage {
        let cli: CLIProcess
        let log: FsyncLog
        let root: String

        /// nil, with an issue recorded, when the shim cannot be built here.
        init?(sourceLocation: SourceLocation = #_sourceLocation) throws {
            if let reason = CFixture.unavailableReason {
                Issue.record("cannot build the fsync-log shim: \(reason)", sourceLocation: sourceLocation)
                return nil
            }
            cli = try CLIProcess()
            do {
                log = try FsyncLog(in: cli)
                root = try cli.keygen("root.key")
            } catch {
                cli.cleanUp()
                throw error
            }
        }

        func tearDown() { cli.cleanUp() }
    }

    @Test func controlAndMountWritesSyncTheWALBeforeTheyAreAcknowledged() throws {
        guard let s = try Stage() else { return }
        defer { s.tearDown() }
        let (cli, log, root) = (s.cli, s.log, s.root)
        let alice = try cli.keygen("alice.key")
        #expect(try cli.run(["grant", "--issuer-key", "root.key", "--to", alice, "--pattern", "/team/**", "--out", "alice.grant"]).status == 0)
        let mnt = cli.path("S-kv")
        let agent = try AgentProcess(cli: cli, name: "S", root: root, extraArgs: ["--key", "root.key", "--mount", mnt], environment: log.environment)
        defer { agent.stop(); MountAgentTests.detach(mnt) }
        #expect(log.walSyncs > 0, "the shim logged no WAL sync while the store was created: is it loaded?")

        let tally = Tally(log)
        for i in 1...3 {
            try tally.expectSynced("set \(i)") {
                let r = try agent.run(["set", "/dur/set\(i)", "v\(i)"])
                #expect(r.status == 0, "\(r.stderr)")
            }
        }
        for i in 1...3 {
            try tally.expectSynced("put \(i)") {
                let r = try agent.run(["set", "--key-file", "alice.key", "--proof", "alice.grant", "/team/put\(i)", "v\(i)"])
                #expect(r.status == 0, "\(r.stderr)")
            }
        }
        for i in 1...3 {
            // The shell command returns after `echo`'s close(), which returns after the commit.
            try tally.expectSynced("save \(i)") {
                let r = try MountAgentTests.shell("echo v\(i) > \(mnt)/dur/save\(i)", in: cli)
                #expect(r.status == 0, "\(r.stderr)")
            }
        }
        for i in 1...3 {
            try tally.expectSynced("rm \(i)") {
                let r = try agent.run(["rm", "/dur/set\(i)"])
                #expect(r.status == 0, "\(r.stderr)")
            }
        }
        #expect(try agent.run(["get", "/team/put3"]).stdout == "v3")
        #expect(try String(contentsOfFile: "\(mnt)/dur/save3", encoding: .utf8) == "v3\n")

        // Reads write nothing, so they sync nothing: a sync per request would be a write hiding somewhere.
        let before = log.entries.count
        for _ in 0..<10 {
            #expect(try agent.run(["get", "/team/put1"]).status == 0)
            #expect(try agent.run(["status"]).status == 0)
            _ = try? String(contentsOfFile: "\(mnt)/dur/save1", encoding: .utf8)
        }
        let idle = log.entries.count - before
        print("fsync before acknowledgement: WAL syncs per write: \(tally.summary); syncs during 30 reads: \(idle)")
        #expect(idle == 0, "reads caused \(idle) syncs: \(log.entries.suffix(idle).map(\.file))")
    }

    /// A peer's push is answered only after the records it carried are durable here: the sender
    /// marks the key clean (`dirty: false`) once this agent acknowledged it, and by then this agent
    /// must have synced its WAL.
    @Test func recordsFromAPeerAreSyncedBeforeThePeerIsTold() throws {
        guard let s = try Stage() else { return }
        defer { s.tearDown() }
        let (cli, log, root) = (s.cli, s.log, s.root)
        let ports = [LoopbackPort.free(), LoopbackPort.free()]
        // A writes; B, under the shim, receives. Periodic rounds are off (1 h): only pushes move records.
        func peer(_ name: String, _ me: Int, environment: [String: String] = [:]) throws -> AgentProcess {
            try AgentProcess(cli: cli, name: name, root: root, extraArgs: [
                "--key", "root.key", "--name", name, "--listen", "127.0.0.1:\(ports[me])", "--sync-interval", "3600",
                "--peer", "127.0.0.1:\(ports[1 - me])",
            ], environment: environment)
        }
        let writer = try peer("A", 0)
        defer { writer.stop() }
        let receiver = try peer("B", 1, environment: log.environment)
        defer { receiver.stop() }
        // B's start-up session with A (A's own ran before B listened) is over once B reports a last
        // sync; from then on only the pushes below write to B's store.
        #expect(try Readiness.wait {
            let status = try receiver.run(["status"]).stdout
            return status.contains("last-sync=") && !status.contains("last-sync=never")
        }, "B never completed its start-up session with A")

        let tally = Tally(log)
        for i in 1...3 {
            try tally.expectSynced("push \(i)") {
                #expect(try writer.run(["set", "/peer/k\(i)", "v\(i)"]).status == 0)
                let acknowledged = try Readiness.wait {
                    try writer.run(["get", "--json", "/peer/k\(i)"]).stdout.contains("\"dirty\" : false")
                }
                #expect(acknowledged, "B never acknowledged /peer/k\(i)")
            }
            #expect(try receiver.run(["get", "/peer/k\(i)"]).stdout == "v\(i)")
        }
        print("fsync before acknowledgement: receiver's WAL syncs per pushed record: \(tally.summary)")
    }
}
