import Foundation
import KVGossipCore
import KVGossipMount
import KVGossipTestSupport
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

        /// Runs `script` (a shell script; `$READY` names a file to wait for) in the mount while
        /// /p/v changes from elsewhere: the change is minted once the script has started, the
        /// watcher sees it land, then the script goes on. Returns what the script printed.
        static func runAcrossAChange(_ fx: MountFixture, _ script: String) throws -> String {
            let watch = try InotifyWatch([fx.path("/p/v")])
            defer { watch.stop() }
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-pc-\(getpid())").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try script.write(toFile: dir + "/s.sh", atomically: true, encoding: .utf8)
            let reader = Process()
            reader.executableURL = URL(fileURLWithPath: "/bin/sh")
            reader.arguments = ["-c", "OPENED=\(dir)/opened READY=\(dir)/ready sh \(dir)/s.sh > \(dir)/out 2>&1"]
            reader.currentDirectoryURL = URL(fileURLWithPath: fx.mountpoint)
            try reader.run()
            defer { if reader.isRunning { kill(reader.processIdentifier, SIGKILL) } }
            // The script says when its first reader holds the old version open.
            #expect(Readiness.wait { FileManager.default.fileExists(atPath: dir + "/opened") }, "the reader never opened the file")
            try fx.rootMint("/p/v", "second\n")
            #expect(watch.wait { $0.has("CLOSE_WRITE", watched: fx.path("/p/v")) })
            _ = FileManager.default.createFile(atPath: dir + "/ready", contents: nil)
            #expect(Readiness.wait { !reader.isRunning })
            return (try? String(contentsOfFile: dir + "/out", encoding: .utf8)) ?? ""
        }

        @Test func aReaderOpenedAfterAChangeIsNotFedByAnOlderReaderStillOpen() throws {
            try withMount(seed: ["/p/v": "first version of the value\n"], options: Self.options) { fx throws in
                // A opens before the change, B after it; A reads first, refilling pages from its own
                // version, then B reads.
                let out = try Self.runAcrossAChange(fx, """
                    python3 -c "
                    import os, time
                    a = os.open('p/v', os.O_RDONLY)
                    open(os.environ['OPENED'], 'w').close()
                    while not os.path.exists(os.environ['READY']): time.sleep(0.01)
                    b = os.open('p/v', os.O_RDONLY)
                    os.read(a, 4096)
                    print(os.read(b, 4096).decode(), end='')
                    "
                    """)
                #expect(out == "second\n")
            }
        }

        @Test func anOldReaderDoesNotLeaveItsVersionForNewReaders() throws {
            try withMount(seed: ["/p/v": "first version of the value\n"], options: Self.options) { fx throws in
                // fd 3 opens the first version and reads only after the change (refilling the cache
                // from its own version); a reader opening after that must still see the new one.
                let out = try Self.runAcrossAChange(fx, """
                    exec 3< p/v
                    touch "$OPENED"
                    while ! test -e "$READY"; do sleep 0.01; done
                    cat <&3 > /dev/null
                    python3 -c "import os; fd = os.open('p/v', os.O_RDONLY); print(os.read(fd, 4096).decode(), end='')"
                    """)
                #expect(out == "second\n")
                #expect(fx.sh("cat p/v").stdout == "second\n")
            }
        }
    }
}
