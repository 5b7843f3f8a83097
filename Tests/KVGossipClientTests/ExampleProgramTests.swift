import Foundation
import KVGossipTestSupport
import Testing

extension AgentTests {
    /// The ConfigWatcher example, run as a process against a real agent: it logs the value and
    /// its dirtiness, logs a change, and exits 0 on SIGTERM.
    @Test func theConfigWatcherExampleFollowsAKey() async throws {
        let binary = Sandbox.buildDirectory.appendingPathComponent("ConfigWatcherExample").path
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build the example first: swift build --product ConfigWatcherExample")
        let sandbox = try Sandbox()
        let root = try await sandbox.keygen("root.key")
        let a = try await sandbox.startAgent("A", root: root)
        #expect(try await a.cli(["set", "/app/db/url", "postgres://one"]).status == 0)

        let (process, output) = try sandbox.spawn(binary, ["--control", a.socket, "--key", "/app/db/url"])
        #expect(await eventually { output.text.contains("value /app/db/url = \"postgres://one\"") }, "\(output.text)")
        #expect(await eventually { output.text.contains("dirty /app/db/url = false (synced)") }, "\(output.text)")

        #expect(try await a.cli(["set", "/app/db/url", "postgres://two"]).status == 0)
        #expect(await eventually { output.text.contains("value /app/db/url = \"postgres://two\"") }, "\(output.text)")

        kill(process.processIdentifier, SIGTERM)
        #expect(await eventually { !process.isRunning })
        #expect(process.terminationStatus == 0)
        // The output is collected apart from the exit: its last lines may come after.
        #expect(await eventually { output.text.contains("stopped") }, "\(output.text)")
        #expect(output.text.contains("received SIGTERM"))

        // Over TCP it needs the root its values are verified against, and follows the key with it.
        let bare = try await sandbox.run(["--control", "127.0.0.1:\(LoopbackPort.free())", "--key", "/app/db/url"], binary: binary)
        #expect(bare.status == 2 && bare.stderr.contains("no-root"), "\(bare.stderr)")
        let port = LoopbackPort.free()
        let b = try await sandbox.startAgent("B", root: root, extra: ["--control-listen", "127.0.0.1:\(port)"])
        #expect(try await b.cli(["set", "/app/db/url", "postgres://tcp"]).status == 0)
        let (remote, remoteOutput) = try sandbox.spawn(binary, ["--control", "127.0.0.1:\(port)", "--key", "/app/db/url", "--root", root, "--control-key", sandbox.path("root.key")])
        #expect(await eventually { remoteOutput.text.contains("value /app/db/url = \"postgres://tcp\"") }, "\(remoteOutput.text)")
        kill(remote.processIdentifier, SIGTERM)
        #expect(await eventually { !remote.isRunning })
    }
}
