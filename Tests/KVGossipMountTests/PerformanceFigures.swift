import Foundation
import Glibc
import KVGossipCore
import Testing

/// Per-operation costs, printed rather than asserted (timings on a shared 2-core VM are noisy).
/// Opt-in: `KVG_MOUNT_FIGURES=1 swift test --filter PerformanceFigures`.
extension MountTests {
    @Suite(.enabled(if: ProcessInfo.processInfo.environment["KVG_MOUNT_FIGURES"] != nil))
    struct PerformanceFigures {
        static func time(_ n: Int, _ body: (Int) throws -> Void) rethrows -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            for i in 0..<n { try body(i) }
            return Double(DispatchTime.now().uptimeNanoseconds - start) / Double(n) / 1000
        }

        static func readOnce(_ path: String) -> Int {
            let fd = open(path, O_RDONLY)
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = read(fd, &buffer, 4096)
            close(fd)
            return n
        }

        static func writeOnce(_ path: String, _ text: String) {
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            _ = text.withCString { write(fd, $0, strlen($0)) }
            close(fd)
        }

        static func report(_ name: String, _ value: Double, _ unit: String = "µs") {
            print("FIGURE \(name): \(String(format: "%.1f", value)) \(unit)")
        }

        @Test func figures() throws {
            let keys = (0..<1000).reduce(into: [String: String]()) { $0["/many/k\($1)"] = "value \($1)" }
            try withMount(seed: keys.merging(["/f/small": "hello world\n"]) { a, _ in a }) { fx throws in
                let shm = "/dev/shm/kvg-figures-\(getpid())"
                mkdir(shm, 0o755)
                defer { _ = Shell.run("rm -rf \(shm)") }
                Self.writeOnce(shm + "/small", "hello world\n")

                Self.report("open+read+close tmpfs", Self.time(20_000) { _ in _ = Self.readOnce(shm + "/small") })
                Self.report("open+read+close mount", Self.time(20_000) { _ in _ = Self.readOnce(fx.path("/f/small")) })
                let smallKey = try Key("/f/small")
                Self.report("store.record (SQLite read)", try Self.time(20_000) { _ in _ = try fx.store.record(smallKey) })
                Self.report("node.mayWrite", Self.time(20_000) { _ in _ = fx.node.mayWrite(smallKey) })
                var st = stat()
                Self.report("stat mount (cached)", Self.time(20_000) { _ in _ = stat(fx.path("/f/small"), &st) })
                Self.report("readdir+stat 1000 keys (ls -l) mount", Self.time(20) { _ in
                    _ = Shell.run("ls -l many > /dev/null", in: fx.mountpoint)
                } / 1000, "ms")
                Self.report("node.mint directly", try Self.time(200) { i in
                    _ = try fx.node.mint(try Key("/f/direct"), value: Array("v\(i)".utf8))
                } / 1000, "ms")
                Self.report("open(O_TRUNC)+write+close tmpfs", Self.time(2000) { i in Self.writeOnce(shm + "/w", "v\(i)\n") })
                Self.report("open(O_TRUNC)+write+close mount (one mint)", Self.time(200) { i in
                    Self.writeOnce(fx.path("/f/small"), "v\(i)\n")
                } / 1000, "ms")
                Self.report("cat via sh tmpfs", Self.time(200) { _ in _ = Shell.run("cat \(shm)/small") } / 1000, "ms")
                Self.report("cat via sh mount", Self.time(200) { _ in _ = Shell.run("cat \(fx.path("/f/small"))") } / 1000, "ms")

                // Remote change → IN_CLOSE_WRITE seen by an inotify watch in this process.
                let fd = inotify_init1(Int32(IN_CLOEXEC))
                defer { close(fd) }
                _ = inotify_add_watch(fd, fx.path("/f/small"), UInt32(IN_CLOSE_WRITE))
                var latencies: [Double] = []
                var buffer = [UInt8](repeating: 0, count: 4096)
                for i in 0..<300 {
                    let start = DispatchTime.now().uptimeNanoseconds
                    _ = try fx.node.mint(try Key("/f/small"), value: Array("remote \(i)\n".utf8))
                    var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                    guard poll(&pfd, 1, 5000) == 1 else { Issue.record("no event \(i)"); break }
                    _ = read(fd, &buffer, 4096)
                    latencies.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1000)
                }
                latencies.sort()
                Self.report("remote mint → IN_CLOSE_WRITE median", latencies[latencies.count / 2] / 1000, "ms")
                Self.report("remote mint → IN_CLOSE_WRITE p99", latencies[latencies.count * 99 / 100] / 1000, "ms")
            }
        }
    }
}
