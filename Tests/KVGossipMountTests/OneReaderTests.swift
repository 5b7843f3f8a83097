import Foundation
import KVGossipTestSupport
import Testing
@testable import KVGossipMount

/// Idle libfuse workers wait for the reader's turn, not in read(2) of the connection, so a request
/// never wakes a worker while the holder is polling (Docs/filesystem.md §One reader at a time).
extension MountTests {
    @Suite struct OneReaderTests {
        /// Threads of this process asleep in the kernel's read of a FUSE connection.
        static func threadsReadingTheConnection() -> Int {
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
            return tasks.filter { tid in
                (try? String(contentsOfFile: "/proc/self/task/\(tid)/wchan", encoding: .utf8)) == "fuse_dev_do_read"
            }.count
        }

        @Test func idleWorkersWaitOutsideTheConnection() throws {
            guard ReadTurnPolls.configuredSpinMicroseconds > 0 else { return }
            try withMount(seed: ["/app/k": "value\n"]) { fx throws in
                // Eight readers at once make libfuse start several workers.
                let readers = (0..<8).map { _ in
                    let reader = Process()
                    reader.executableURL = URL(fileURLWithPath: "/bin/sh")
                    reader.arguments = ["-c", "for j in $(seq 100); do cat app/k > /dev/null || exit 1; done"]
                    reader.currentDirectoryURL = URL(fileURLWithPath: fx.mountpoint)
                    return reader
                }
                for reader in readers { try reader.run() }
                defer { for reader in readers where reader.isRunning { kill(reader.processIdentifier, SIGKILL) } }
                for reader in readers { reader.waitUntilExit() }
                #expect(readers.allSatisfy { $0.terminationStatus == 0 })
                // Once the holder's poll is over it sleeps in read(2); nobody else may.
                var reading = Self.threadsReadingTheConnection()
                #expect(Readiness.wait { reading = Self.threadsReadingTheConnection(); return reading == 1 }, "\(reading) workers in read(2) of the connection")
                #expect(fx.sh("cat app/k").stdout == "value\n")
            }
        }
    }
}
