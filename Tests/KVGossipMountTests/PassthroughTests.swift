import Foundation
import KVGossipCore
import KVGossipTestSupport
import Testing
@testable import KVGossipMount

/// Readers in the default mode read from a passthrough backing of their version
/// (Docs/filesystem.md §Reading): no request per read, and still one version per open.
extension MountTests {
    @Suite struct PassthroughTests {
        /// Linux 6.9 brought FUSE passthrough; on an older kernel the mount falls back to direct I/O
        /// and this test only checks that reads stay exact.
        static var kernelHasPassthrough: Bool {
            var name = utsname()
            uname(&name)
            let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            let parts = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
            return parts.count == 2 && (parts[0], parts[1]) >= (6, 9)
        }

        @Test func readersReadFromTheirVersionsBackingWithoutAskingTheMount() throws {
            try withMount(seed: ["/app/k": "first\n"]) { fx throws in
                let (active, before) = fx.mount.debugPassthrough()
                #expect(active == Self.kernelHasPassthrough, "passthrough active: \(active)")
                let reads = fx.sh("for i in $(seq 20); do cat app/k; done")
                #expect(reads.stdout == String(repeating: "first\n", count: 20))
                if active { #expect(fx.mount.debugPassthrough().readRequests == before, "reads reached the mount") }

                // Reader 3 holds the first version, reader 4 opens after a local save (while 3 still
                // holds the backing: direct I/O beside it), then a change arrives from elsewhere.
                let watch = try InotifyWatch([fx.path("/app/k")])
                defer { watch.stop() }
                let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-pt-\(getpid())").path
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(atPath: dir) }
                let holder = Process()
                holder.executableURL = URL(fileURLWithPath: "/bin/bash")
                holder.arguments = ["-c", """
                    exec 3< app/k; echo second > app/k; exec 4< app/k; : > \(dir)/opened
                    while [ ! -e \(dir)/go ]; do sleep 0.01; done
                    cat <&3 <&3; echo ---; cat <&4; echo ---; cat app/k
                    """]
                holder.currentDirectoryURL = URL(fileURLWithPath: fx.mountpoint)
                let out = Pipe()
                holder.standardOutput = out
                try holder.run()
                defer { if holder.isRunning { kill(holder.processIdentifier, SIGKILL) } }
                #expect(Readiness.wait { FileManager.default.fileExists(atPath: dir + "/opened") })
                try fx.rootMint("/app/k", "third, from elsewhere\n")
                #expect(watch.wait { $0.has("CLOSE_WRITE", watched: fx.path("/app/k")) })
                _ = FileManager.default.createFile(atPath: dir + "/go", contents: nil)
                holder.waitUntilExit()
                let printed = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                #expect(printed == "first\n---\nsecond\n---\nthird, from elsewhere\n", "\(printed)")

                // Once nobody holds the old backing, readers of the new version get one of their own.
                #expect(fx.sh("cat app/k").stdout == "third, from elsewhere\n")
                let afterFirst = fx.mount.debugPassthrough().readRequests
                #expect(fx.sh("for i in $(seq 20); do cat app/k; done").stdout == String(repeating: "third, from elsewhere\n", count: 20))
                if active { #expect(fx.mount.debugPassthrough().readRequests == afterFirst, "reads reached the mount") }
            }
        }
    }
}
