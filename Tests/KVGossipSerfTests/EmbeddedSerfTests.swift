import Foundation
import KVGossipTestSupport
import Testing
@testable import KVGossipSerf

#if canImport(Glibc)
import Glibc
#endif

extension SerfIntegration {
    /// The supervisor and the reconnecting session against real agents.
    @Suite struct EmbeddedSerfTests {
        @Test func killedAgentIsRestartedAndTheSessionReconnects() async throws {
            try await SerfTestCluster.with { cluster in
                let agent = try await cluster.start("e")
                let session = SerfSession(
                    .init(address: agent.rpcAddress, backoff: SerfBackoff(initial: .milliseconds(50), maximum: .milliseconds(400))),
                    logger: quietLogger("test.session"))
                let events = Recorder(session.events)
                session.start()
                let connects = { events.elements.filter { if case .connected = $0 { true } else { false } }.count }
                #expect(await Readiness.waitAsync { connects() == 1 })
                #expect(try await session.members().map(\.name) == ["e"])

                let oldPID = try #require(agent.pid)
                let killed = ContinuousClock.now
                kill(oldPID, SIGKILL)
                let lost = try await events.wait { event -> String? in
                    if case .disconnected(let reason) = event { reason } else { nil }
                }
                #expect(lost != nil)
                #expect(await Readiness.waitAsync { connects() == 2 })
                let back = ContinuousClock.now - killed
                // The pid file is written only once the supervisor has recorded the child, so
                // whoever reads a new pid there finds `pid` naming it too.
                let pidFile = agent.configuration.directory + "/serf.pid"
                let filed = { (try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) } }
                #expect(await Readiness.waitAsync { (filed() ?? oldPID) != oldPID })
                let newPID = try #require(filed())
                #expect(agent.pid == newPID)
                #expect(agent.restartCount == 1)
                #expect(try await session.members().map(\.status) == [.alive])
                // The stream was re-opened on the new connection: a tag change comes back as an event.
                try await session.withClient { try await $0.tags(set: ["role": "restarted"]) }
                let update = try await events.wait { event -> SerfMember? in
                    guard case .event(.member(let e)) = event, e.kind == .update else { return nil }
                    return e.members.first { $0.tags["role"] == "restarted" }
                }
                #expect(update?.0.tags == ["kvg": "17000", "role": "restarted"])
                await session.close()
                events.cancel()
                print("measured: SIGKILL → restarted agent → session reconnected: \(Int(back.milliseconds)) ms")
            }
        }

        /// A pid file left by an earlier run names a process to kill only when that process is a
        /// `serf agent` of this very directory (its `-snapshot=` path): a pid reused by something
        /// else, even something started with `agent` and another directory's snapshot, survives
        /// the start (Docs/serf-rpc.md §Supervision: `EmbeddedSerf`).
        @Test func aLeftoverPidIsKilledOnlyWhenItIsThisDirectorysSerf() async throws {
            try await SerfTestCluster.with { cluster in
                let directory = cluster.directory + "/s"
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                func lookalike(snapshot: String) throws -> Process {
                    let p = Process()
                    p.executableURL = URL(fileURLWithPath: "/bin/sh")
                    p.arguments = ["-c", "sleep 60", "agent", "-snapshot=\(snapshot)"]
                    try p.run()
                    return p
                }
                // Killed shows as a zombie (this test is its parent) before Foundation reaps it.
                func alive(_ p: Process) -> Bool {
                    guard let stat = try? String(contentsOfFile: "/proc/\(p.processIdentifier)/stat", encoding: .utf8),
                          let close = stat.lastIndex(of: ")") else { return false }
                    return !stat[close...].hasPrefix(") Z")
                }
                let other = try lookalike(snapshot: cluster.directory + "/elsewhere/serf.snapshot")
                defer { kill(other.processIdentifier, SIGKILL) }
                try "\(other.processIdentifier)\n".write(toFile: directory + "/serf.pid", atomically: true, encoding: .utf8)
                let first = try await cluster.start("s")
                #expect(alive(other), "a process of another directory was killed")
                await first.stop(gracefully: false)

                let leftover = try lookalike(snapshot: directory + "/serf.snapshot")
                defer { kill(leftover.processIdentifier, SIGKILL) }
                try "\(leftover.processIdentifier)\n".write(toFile: directory + "/serf.pid", atomically: true, encoding: .utf8)
                try await cluster.start("s")
                #expect(await Readiness.waitAsync { !alive(leftover) }, "this directory's leftover agent was not killed")
                #expect(alive(other))
            }
        }

        @Test func aStuckAgentIsKilledAfterTheStopTimeout() async throws {
            try await SerfTestCluster.with { cluster in
                let agent = try await cluster.start("stuck") { $0.stopTimeout = .milliseconds(400) }
                let pid = try #require(agent.pid)
                kill(pid, SIGSTOP)  // a stopped process cannot act on SIGINT
                let began = ContinuousClock.now
                await agent.stop()
                let took = ContinuousClock.now - began
                // Not before the stop timeout; the upper bound only catches a stop that never ends.
                #expect(took >= .milliseconds(400), "killed after \(took)")
                #expect(took < .seconds(60), "killed after \(took)")
                #expect(agent.pid == nil && agent.restartCount == 0)
                #expect(!FileManager.default.fileExists(atPath: agent.configuration.directory + "/serf.pid"))
            }
        }

        @Test func rpcLeaveEndsTheAgentAndTheSupervisorBringsItBack() async throws {
            try await SerfTestCluster.with { cluster in
                let agent = try await cluster.start("l")
                let client = try await SerfRPCClient.connect(to: agent.rpcAddress)
                try await client.leave()
                #expect(await Readiness.waitAsync { agent.restartCount == 1 })
                #expect(try await Readiness.waitAsync {
                    let again = try await SerfRPCClient.connect(to: agent.rpcAddress)
                    defer { Task { await again.close() } }
                    return try await again.members().map(\.status) == [.alive]
                })
                await client.close()
            }
        }

        @Test func secretsStayOffTheCommandLineAndAuthIsEnforced() async throws {
            let gossipKey = "3pEEt5fGnKz9aCop4n6iKneX1WTWPyHKb8Tk63/Gjdw="
            try await SerfTestCluster.with { cluster in
                let a = try await cluster.start("a") {
                    $0.encryptKey = gossipKey
                    $0.rpcAuthKey = "rpc-secret"
                }
                let b = try await cluster.start("b", joining: a) { $0.encryptKey = gossipKey }
                let pid = try #require(a.pid)
                let cmdline = String(decoding: try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")), as: UTF8.self)
                #expect(!cmdline.contains("rpc-secret") && !cmdline.contains(gossipKey))
                let mode = try FileManager.default.attributesOfItem(atPath: a.configuration.directory + "/serf-secrets.json")[.posixPermissions] as? Int
                #expect(mode == 0o600)

                let anonymous = try await SerfRPCClient.connect(to: a.rpcAddress)
                await #expect(throws: SerfError.agent(command: "members", message: "Authentication required")) {
                    try await anonymous.members()
                }
                await anonymous.close()
                await #expect(throws: SerfError.agent(command: "auth", message: "Invalid authentication token")) {
                    try await SerfRPCClient.connect(to: a.rpcAddress, authKey: "wrong")
                }
                let client = try await SerfRPCClient.connect(to: a.rpcAddress, authKey: "rpc-secret")
                // b joined over the encrypted gossip.
                #expect(try await Readiness.waitAsync { try await client.members().filter { $0.status == .alive }.count == 2 })
                await client.close()
                _ = b
            }
        }

        @Test func startFailsWithTheAgentsOwnWords() async throws {
            try await SerfTestCluster.with { cluster in
                await #expect {
                    try await cluster.start("bad") { $0.encryptKey = "too-short" }
                } throws: { error in
                    guard case .process(let text) = error as? SerfError else { return false }
                    return text.contains("exited during start") && text.contains("key")
                }
            }
        }
    }
}
