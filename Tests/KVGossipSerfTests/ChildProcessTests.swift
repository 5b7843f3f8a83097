import Foundation
import Testing
@testable import KVGossipSerf

/// The embedded Serf's child process: spawned, waited for and reaped by its PID.
@Suite struct ChildProcessTests {
    private func spawn(_ script: String) throws -> ChildProcess {
        try ChildProcess.spawn(executable: "/bin/sh", arguments: ["-c", script], logPath: "/dev/null")
    }

    @Test func waitingReturnsTheExitCode() async throws {
        let child = try spawn("exit 3")
        #expect(await child.waitForExit().exitCode == 3)
        // Reaped once: the status stays.
        #expect(child.poll()?.exitCode == 3)
        #expect(!child.isRunning)
    }

    /// Every waiter returns when the child ends, and waiting does not poll on a timer: an idle
    /// agent waits for its Serf for as long as Serf runs.
    @Test func waitersAreWokenByTheExitNotByPolling() async throws {
        let child = try spawn("exec sleep 30")
        async let first = child.waitForExit()
        async let second = child.waitForExit()
        // Both are waiting once each has polled once (they poll before they wait).
        while child.polls < 2 { try await Task.sleep(for: .milliseconds(5)) }
        try await Task.sleep(for: .milliseconds(400))
        let pollsWhileWaiting = child.polls
        child.signal(SIGTERM)
        let (a, b) = await (first, second)
        #expect(a.signal == SIGTERM)
        #expect(b.signal == SIGTERM)
        // Polling every 50 ms would have polled about 16 times in those 400 ms.
        #expect(pollsWhileWaiting <= 2)
    }

    @Test func aChildAlreadyReapedIsNotWaitedFor() async throws {
        let child = try spawn("exit 0")
        while child.poll() == nil { try await Task.sleep(for: .milliseconds(5)) }
        #expect(await child.waitForExit().exitCode == 0)
    }
}
