import Foundation
import KVGossipCore
import KVGossipMount
import Testing

/// MountOptions.readerPageCache: readers share the kernel's page cache, and nothing a reader of an
/// older version puts there reaches a reader who opened after the change.
extension MountTests {
    @Suite struct PageCacheTests {
        static var options: MountOptions {
            var options = MountOptions()
            options.readerPageCache = true
            return options
        }

        @Test func aLocalWriteIsReadBackAtOnce() throws {
            try withMount(seed: ["/p/v": "a-long-first-value\n"], options: Self.options) { fx throws in
                #expect(fx.sh("cat p/v").stdout == "a-long-first-value\n")
                for value in ["short", "a-much-longer-second-value", "x"] {
                    let result = fx.sh("echo \(value) > p/v && python3 -c \"import os; fd = os.open('p/v', os.O_RDONLY); print(os.read(fd, 4096).decode(), end='')\"")
                    #expect(result.stdout == value + "\n", "\(result)")
                }
            }
        }

        @Test func aReaderOpenedAfterAChangeIsNotFedByAnOlderReaderStillOpen() throws {
            try withMount(seed: ["/p/v": "first version of the value\n"], options: Self.options) { fx throws in
                let watch = try InotifyWatch([fx.path("/p/v")])
                defer { watch.stop() }
                let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-pc2-\(getpid())").path
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(atPath: dir) }
                // A opens before the change; B after it; A reads first, refilling pages from its
                // own version, then B reads.
                let script = """
                    import os, time
                    a = os.open('p/v', os.O_RDONLY)
                    while not os.path.exists('\(dir)/ready'): time.sleep(0.01)
                    b = os.open('p/v', os.O_RDONLY)
                    os.read(a, 4096)
                    print(os.read(b, 4096).decode(), end='')
                    """
                try script.write(toFile: dir + "/r.py", atomically: true, encoding: .utf8)
                let reader = Process()
                reader.executableURL = URL(fileURLWithPath: "/bin/sh")
                reader.arguments = ["-c", "python3 \(dir)/r.py > \(dir)/out 2>&1"]
                reader.currentDirectoryURL = URL(fileURLWithPath: fx.mountpoint)
                try reader.run()
                defer { if reader.isRunning { kill(reader.processIdentifier, SIGKILL) } }
                Thread.sleep(forTimeInterval: 0.5)
                try fx.rootMint("/p/v", "second\n")
                #expect(watch.wait { $0.has("CLOSE_WRITE", watched: fx.path("/p/v")) })
                _ = FileManager.default.createFile(atPath: dir + "/ready", contents: nil)
                #expect(waitUntil { !reader.isRunning })
                let out = (try? String(contentsOfFile: dir + "/out", encoding: .utf8)) ?? ""
                #expect(out == "second\n")
            }
        }

        @Test func anOldReaderDoesNotLeaveItsVersionForNewReaders() throws {
            try withMount(seed: ["/p/v": "first version of the value\n"], options: Self.options) { fx throws in
                let watch = try InotifyWatch([fx.path("/p/v")])
                defer { watch.stop() }
                // fd 3 opens the first version; the change arrives from elsewhere; fd 3 then reads
                // (refilling the cache from its own version); a new reader must still see the new one.
                let script = """
                    exec 3< p/v
                    while ! test -e ready; do sleep 0.01; done
                    cat <&3 > /dev/null
                    python3 -c "import os; fd = os.open('p/v', os.O_RDONLY); print(os.read(fd, 4096).decode(), end='')"
                    """
                let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-pc-\(getpid())").path
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(atPath: dir) }
                let scriptFile = dir + "/s.sh"
                try script.replacingOccurrences(of: "test -e ready", with: "test -e \(dir)/ready")
                    .write(toFile: scriptFile, atomically: true, encoding: .utf8)
                let reader = Process()
                reader.executableURL = URL(fileURLWithPath: "/bin/sh")
                reader.arguments = ["-c", "sh \(scriptFile) > \(dir)/out 2>&1"]
                reader.currentDirectoryURL = URL(fileURLWithPath: fx.mountpoint)
                try reader.run()
                defer { if reader.isRunning { kill(reader.processIdentifier, SIGKILL) } }
                Thread.sleep(forTimeInterval: 0.3)
                try fx.rootMint("/p/v", "second\n")
                #expect(watch.wait { $0.has("CLOSE_WRITE", watched: fx.path("/p/v")) })
                _ = FileManager.default.createFile(atPath: dir + "/ready", contents: nil)
                #expect(waitUntil { !reader.isRunning })
                let out = (try? String(contentsOfFile: dir + "/out", encoding: .utf8)) ?? ""
                #expect(out == "second\n")
                #expect(fx.sh("cat p/v").stdout == "second\n")
            }
        }
    }
}
