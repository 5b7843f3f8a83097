import Foundation
import Glibc
import KVGossipProcess
import Testing

/// A child gets exactly the descriptors it is given and default signal handling, and how it ended
/// is read from its wait status.
@Suite struct SpawnTests {
    /// Runs `script` with `sh -c`, its output in a temporary file; the output and how it ended.
    private func run(_ script: String, _ spawn: (Int32) -> Spawn) throws -> (output: String, status: WaitStatus) {
        var template = Array("/tmp/kvg-spawn-test-XXXXXX".utf8CString)
        let output = mkstemp(&template)
        try #require(output >= 0)
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        defer { close(output) }
        _ = fcntl(output, F_SETFD, FD_CLOEXEC)
        let pid = try spawn(output).start("/bin/sh", arguments: ["sh", "-c", script])
        let status = WaitStatus.waitFor(pid)
        var bytes = [UInt8](repeating: 0, count: 1 << 16)
        let n = pread(output, &bytes, bytes.count, 0)
        return (String(decoding: bytes.prefix(max(0, n)), as: UTF8.self), status)
    }

    /// A descriptor this process holds without close-on-exec (as SwiftNIO's sockets are) does not
    /// reach the child; the ones it is given do, at the numbers named.
    @Test func aChildHoldsOnlyTheDescriptorsItIsGiven() throws {
        let inherited = open("/dev/null", O_RDONLY)
        try #require(inherited > 2)
        defer { close(inherited) }
        // Named up to 5: 3 and 4 are closed in the child too, whatever this process holds there.
        let (output, status) = try run("ls /proc/$$/fd") { out in
            Spawn(descriptors: [.open(0, path: "/dev/null", flags: O_RDONLY), .copy(out, to: 1), .copy(out, to: 5)])
        }
        #expect(status.exitCode == 0)
        // ls opens one descriptor of its own for the directory it lists.
        let held = Set(output.split(separator: "\n").compactMap { Int32($0) })
        #expect(held.isSuperset(of: [0, 1, 2, 5]), "\(held)")
        #expect(!held.contains(inherited), "the child holds this process's descriptor \(inherited): \(held)")
        #expect(held.count <= 5, "\(held)")
    }

    /// An ignored SIGHUP and a blocked SIGTERM are not passed on; a child in its own group leads it.
    /// (SIGHUP, not SIGPIPE: SwiftNIO ignores SIGPIPE once for the whole process, and a test that
    /// put back SIGPIPE's default meanwhile would leave every later test exposed to it.)
    @Test func aChildStartsWithDefaultSignalsAndItsOwnGroup() throws {
        let previous = signal(SIGHUP, SIG_IGN)
        defer { signal(SIGHUP, previous) }
        var blocked = sigset_t(), before = sigset_t()
        sigemptyset(&blocked)
        sigaddset(&blocked, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &blocked, &before)
        defer { pthread_sigmask(SIG_SETMASK, &before, nil) }
        // The shell execs grep, which reads its own status: a shell waiting for a command blocks
        // signals of its own meanwhile. /proc/self/stat's fifth field is the process group.
        let (output, _) = try run("exec grep -H -E '^(SigBlk|SigIgn):|^[0-9]' /proc/self/status /proc/self/stat") { out in
            Spawn(descriptors: [.copy(out, to: 1)], ownProcessGroup: true)
        }
        let lines = output.split(separator: "\n").map(String.init)
        func field(_ name: String) -> String? {
            lines.first { $0.hasPrefix("/proc/self/status:" + name + ":") }.map {
                $0.dropFirst("/proc/self/status:".count + name.count + 1).trimmingCharacters(in: .whitespaces)
            }
        }
        let bit = { (signal: Int32) -> UInt64 in UInt64(1) << UInt64(signal - 1) }
        #expect(field("SigIgn").flatMap { UInt64($0, radix: 16) }.map { $0 & bit(SIGHUP) == 0 } == true, "SIGHUP still ignored: \(output)")
        #expect(field("SigBlk").flatMap { UInt64($0, radix: 16) }.map { $0 & bit(SIGTERM) == 0 } == true, "SIGTERM still blocked: \(output)")
        // "pid (comm) state ppid pgrp …", the command name without spaces here (grep).
        let stat = lines.first { $0.hasPrefix("/proc/self/stat:") }?.dropFirst("/proc/self/stat:".count).split(separator: " ") ?? []
        #expect(stat.count > 4 && stat[0] == stat[4], "not the leader of its own group: \(output)")
    }

    @Test func theWaitStatusTellsHowAChildEnded() throws {
        let exited = try run("exit 3") { Spawn(descriptors: [.copy($0, to: 1)]) }.status
        #expect(exited.exitCode == 3 && exited.signal == nil && "\(exited)" == "exit code 3")
        let killed = try run("kill -9 $$") { Spawn(descriptors: [.copy($0, to: 1)]) }.status
        #expect(killed.signal == SIGKILL && killed.exitCode == nil)
        #expect(killed.shellCode == 137)
        #expect("\(killed)" == "killed by signal 9")
        #expect("\(WaitStatus.unknown)" == "unknown status" && WaitStatus.unknown.exitCode == nil)
        #expect(throws: SpawnError.self) { try Spawn().start("/nonexistent/kvg", arguments: ["kvg"]) }
        // Asked without waiting: nothing while it runs, how it ended once it has, and unknown once
        // it is reaped.
        let pid = try Spawn().start("/bin/sleep", arguments: ["sleep", "30"])
        #expect(WaitStatus.ifEnded(pid) == nil)
        kill(pid, SIGTERM)
        var ended: WaitStatus?
        for _ in 0..<30_000 where ended == nil {
            ended = WaitStatus.ifEnded(pid)
            if ended == nil { usleep(1_000) }
        }
        #expect(ended?.signal == SIGTERM)
        #expect(WaitStatus.ifEnded(pid) == .unknown)
    }
}
