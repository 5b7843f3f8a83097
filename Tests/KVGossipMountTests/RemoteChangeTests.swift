import Foundation
import KVGossipCore
import KVGossipTestSupport
import Testing
@testable import KVGossipMount

/// Changes stored without going through the mount (as gossip, the CLI or the API store them)
extension MountTests {
    /// raise the inotify events a local edit would, and a read right after the event sees them.
    @Suite struct RemoteChangeTests {
        @Test(arguments: [false, true]) func watchersSeeEveryRemoteChange200Times(readerPageCache: Bool) throws {
            var options = MountOptions()
            options.readerPageCache = readerPageCache
            try withMount(seed: ["/w/f": "start\n"], options: options) { fx throws in
                let file = fx.path("/w/f"), dir = fx.path("/w") + "/"
                let watch = try InotifyWatch([file, fx.path("/w")])
                defer { watch.stop() }
                var misses: [String] = []
                for i in 0..<200 {
                    watch.clear()
                    let value = "value \(i)\n"
                    _ = try fx.node.mint(try Key("/w/f"), value: Array(value.utf8))
                    let seen = watch.wait { $0.has("CLOSE_WRITE", watched: file) }
                    if !seen || !watch.events.has("MODIFY", watched: file) || !watch.events.has("CLOSE_WRITE", watched: dir, name: "f") {
                        misses.append("modify \(i): \(watch.events)")
                    }
                    let cat = fx.sh("cat w/f", timeout: 5)
                    if cat.stdout != value { misses.append("read \(i): \(cat)") }

                    guard i % 4 == 0 else { continue }
                    watch.clear()
                    let name = "n\(i)"
                    _ = try fx.node.mint(try Key("/w/" + name), value: Array("new \(i)".utf8))
                    if !watch.wait(until: { $0.has("CREATE", watched: dir, name: name) && $0.has("CLOSE_WRITE", watched: dir, name: name) }) {
                        misses.append("create \(i): \(watch.events)")
                    }
                    let catNew = fx.sh("cat w/\(name)", timeout: 5)
                    if catNew.stdout != "new \(i)" { misses.append("read new \(i): \(catNew)") }
                    watch.clear()
                    _ = try fx.node.mint(try Key("/w/" + name), value: nil)
                    if !watch.wait(until: { $0.has("DELETE", watched: dir, name: name) }) {
                        misses.append("delete \(i): \(watch.events)")
                    }
                    if fx.sh("test -e w/\(name)").ok { misses.append("still there \(i)") }
                }
                #expect(misses.isEmpty, "\(misses.prefix(5))")
                #expect(try fx.values() == ["/w/f": "value 199\n"])
            }
        }

        /// After a replayed rewrite, `stat` of a file whose attributes the kernel had cached shows
        /// the new value's size and time, and the mode it had: the follower invalidates nothing
        /// after a rewrite in the default mode, trusting the kernel to have marked size and times
        /// stale at the truncating open (Docs/filesystem.md §Changes made elsewhere).
        @Test(arguments: [false, true]) func statAfterAReplayShowsTheNewSizeAndTime(readerPageCache: Bool) throws {
            var options = MountOptions()
            options.readerPageCache = readerPageCache
            try withMount(seed: ["/s/f": "a first value, longer than some that follow\n"], options: options) { fx throws in
                let file = fx.path("/s/f")
                let watch = try InotifyWatch([file])
                defer { watch.stop() }
                for value in ["short\n", "", "a value longer than the first one was, by a few bytes\n", "x"] {
                    // The kernel holds the attributes of the version before.
                    #expect(fx.sh("stat -c %s s/f").ok)
                    watch.clear()
                    let (record, _) = try fx.node.mint(try Key("/s/f"), value: Array(value.utf8))
                    #expect(watch.wait { $0.has("CLOSE_WRITE", watched: file) }, "no replay of \(value.debugDescription)")
                    let seconds = record.timestamp.physicalMs / 1000
                    #expect(fx.sh("stat -c '%s %Y %a' s/f").stdout == "\(value.utf8.count) \(seconds) 644\n", "after \(value.debugDescription)")
                    #expect(fx.sh("cat s/f").stdout == value)
                }
            }
        }

        @Test func newKeysInNewDirectoriesCreateTheDirectories() throws {
            try withMount { fx throws in
                let watch = try InotifyWatch([fx.mountpoint])
                defer { watch.stop() }
                try fx.rootMint("/svc/web/port", "8080")
                #expect(watch.wait { $0.has("CREATE", watched: fx.mountpoint + "/", name: "svc") })
                #expect(Readiness.wait { fx.sh("cat svc/web/port").stdout == "8080" })
                // Removing the last key removes the directories the network no longer has.
                try fx.rootMint("/svc/web/port", nil)
                #expect(watch.wait { $0.has("DELETE", watched: fx.mountpoint + "/", name: "svc") })
                #expect(fx.sh("ls -A").stdout == "")
                #expect(fx.settle(from: 0, expected: 2).count == 2, "replaying must not mint")
            }
        }

        @Test(arguments: [false, true]) func aReaderWithoutStatSeesTheNewValueAfterTheEvent(readerPageCache: Bool) throws {
            var options = MountOptions()
            options.readerPageCache = readerPageCache
            try withMount(seed: ["/r/v": "a-much-longer-first-value\n"], options: options) { fx throws in
                // Warm the kernel's caches with the old version first.
                #expect(fx.sh("cat r/v").stdout == "a-much-longer-first-value\n")
                let watch = try InotifyWatch([fx.path("/r/v")])
                defer { watch.stop() }
                for (i, value) in ["short\n", "a-much-longer-second-value-than-before\n", "x\n"].enumerated() {
                    watch.clear()
                    try fx.rootMint("/r/v", value)
                    #expect(watch.wait { $0.has("CLOSE_WRITE", watched: fx.path("/r/v")) }, "event \(i)")
                    // Python reads without fstat, so stale cached sizes or pages would show.
                    let read = fx.sh("python3 -c \"import os; fd = os.open('r/v', os.O_RDONLY); print(os.read(fd, 4096).decode(), end='')\"")
                    #expect(read.stdout == value, "\(read)")
                }
            }
        }

        @Test func concurrentLocalAndRemoteEditsConverge() throws {
            try withMount(seed: ["/c/k": "0", "/c/other": "0"]) { fx throws in
                let done = DispatchSemaphore(value: 0)
                let mountpoint = fx.mountpoint
                Thread {
                    _ = Shell.run("for i in $(seq 150); do echo local$i > c/k; cat c/k c/other > /dev/null; done", in: mountpoint, timeout: 60)
                    done.signal()
                }.start()
                for i in 0..<150 {
                    try fx.rootMint(i % 2 == 0 ? "/c/k" : "/c/other", "remote\(i)\n")
                    if i % 10 == 0 { try fx.rootMint("/c/new\(i)", "n") }
                }
                #expect(done.wait(timeout: .now() + 60) == .success, "local edits hung")
                let values = try fx.values()
                // Whatever won, the view settles on what the store holds.
                #expect(Readiness.wait { fx.sh("cat c/k").stdout == values["/c/k"] && fx.sh("cat c/other").stdout == values["/c/other"] })
                #expect(Readiness.wait { fx.sh("ls c | wc -l").stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "17" })
            }
        }

        /// An `O_APPEND` write lands at the end of the handle's buffer, a copy of the value committed
        /// when it opened, whatever offset the kernel took from the size it cached
        /// (Docs/filesystem.md §Writing: one save, one record; Docs/filesystem.md §Tool request sequences).
        /// The replay helper is held stopped, so the change is stored while the kernel still has
        /// the old, longer size; its replay, released after the save, comes late and must leave the
        /// newer save shown (Docs/filesystem.md §Changes made elsewhere).
        @Test func anAppendAfterAChangeFromElsewhereAddsToTheNewValue() throws {
            let first = "a first value, longer than the next one\n"
            try withMount(seed: ["/a/log": first]) { fx throws in
                #expect(fx.sh("cat a/log").stdout == first)
                let helper = try #require(fx.mount.debugReplayHelper())
                kill(helper, SIGSTOP)
                defer { kill(helper, SIGCONT) }
                #expect(Readiness.wait { ProcessState.of(helper) == "T" }, "the replay helper did not stop")
                let mark = fx.recorder.count
                try fx.rootMint("/a/log", "second\n")
                #expect(Readiness.wait { fx.mount.debugDeliveriesInFlight() == ["/a/log"] }, "the follower sent no delivery")
                // Not replayed yet: the kernel still answers with the first value's size.
                #expect(fx.sh("stat -c %s a/log").stdout == "\(first.utf8.count)\n")
                #expect(fx.sh("echo appended >> a/log").ok)
                #expect(fx.settle(from: mark, expected: 2).map(\.text) == ["second\n", "second\nappended\n"])

                let watch = try InotifyWatch([fx.path("/a/log")])
                defer { watch.stop() }
                kill(helper, SIGCONT)
                #expect(watch.wait { $0.has("CLOSE_WRITE", watched: fx.path("/a/log")) }, "the held replay never landed")
                #expect(fx.sh("cat a/log; stat -c %s a/log").stdout == "second\nappended\n16\n")
            }
        }
    }
}
