import Foundation
import Glibc
import KVGossipTestSupport
import KVGossipTestTraits
import Testing

/// The floor `kvgossip-bench mount` measures beside the agent (`kvgossip-bench fuse-floor`): a FUSE
/// filesystem of its own that serves one file, so that what the benchmark calls the floor is a real
/// round trip through the kernel, and one that goes away when the benchmark stops it.
@Suite(.integration) struct BenchFloorTests {
    static var bench: String {
        URL(fileURLWithPath: CLIProcess.binary).deletingLastPathComponent().appendingPathComponent("kvgossip-bench").path
    }

    @Test func theFloorServesItsOneFileThroughFUSEAndLeavesWhenStopped() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let mountpoint = cli.path("floor")
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        let floor = Process()
        floor.executableURL = URL(fileURLWithPath: Self.bench)
        floor.arguments = ["fuse-floor", mountpoint, "postgres://db2\n"]
        try floor.run()
        // As the benchmark stops it: SIGTERM, then the mount detached, which ends libfuse's read.
        func stop() {
            floor.terminate()
            _ = umount2(mountpoint, Int32(MNT_DETACH))
            floor.waitUntilExit()
        }
        defer { if floor.isRunning { stop() } }
        #expect(Readiness.wait { Unmounted.isMounted(mountpoint) })

        let entry = (ProcFile.read("/proc/self/mountinfo") ?? "").split(separator: "\n").first { $0.contains(" \(mountpoint) ") }
        #expect(entry?.contains(" - fuse ") == true, "not a FUSE filesystem: \(entry ?? "none")")
        for _ in 0..<3 {
            #expect(try String(contentsOfFile: mountpoint + "/f", encoding: .utf8) == "postgres://db2\n")
        }
        var st = stat()
        #expect(stat(mountpoint + "/f", &st) == 0 && st.st_mode & S_IFMT == S_IFREG && st.st_size == 15)
        #expect(stat(mountpoint + "/other", &st) == -1 && errno == ENOENT)

        stop()
        #expect(!Unmounted.isMounted(mountpoint))
    }
}
