import Foundation
import Glibc
import KVGossipCore
import KVGossipMount
import KVGossipTestSupport
import Testing

extension MountTests {
    /// Eight readers and two writers on fifty keys for 30 s while changes made elsewhere arrive:
    /// every read of a file, from its open to its close, returns one version whole
    /// (Docs/filesystem.md §Reading). Values are a version's number repeated over several pages,
    /// so a read that mixed two versions shows two numbers.
    @Suite(.serialized) struct HammerTests {
        static let keys = (0 ..< 50).map { String(format: "/h/k%02d", $0) }
        static let seconds = 30.0

        /// A value that names its version in every 8 bytes or so: ~200 KB, larger than the kernel's
        /// readahead window, so a reader with the page cache fetches it in several requests too.
        static func value(_ version: Int) -> String { String(repeating: "\(version);", count: 200_000 / ("\(version);".count)) }

        /// The versions a whole file's bytes name (one, unless two versions were mixed).
        static func versions(in bytes: [UInt8]) -> Set<Substring> {
            Set(String(decoding: bytes, as: UTF8.self).split(separator: ";"))
        }

        struct Tally: Sendable {
            var reads = 0
            var mixed: [String] = []
            var saves = 0
            var failedSaves: [String] = []
            var remote = 0
            var slowestReadMs = 0.0
            var slowestSaveMs = 0.0
        }

        /// The check itself: the first half of one version and the rest of another name two.
        @Test func aReadThatMixedTwoVersionsNamesBoth() {
            let a = Array(Self.value(1_000_001).utf8), b = Array(Self.value(5_000_002).utf8)
            #expect(Self.versions(in: a) == ["1000001"])
            #expect(Self.versions(in: Array(a[..<100_000]) + Array(b[100_000...])).count > 1)
        }

        @Test func eightReadersTwoWritersAndRemoteChangesNeverSeeTwoVersionsInOneRead() throws {
            let seed = Dictionary(uniqueKeysWithValues: Self.keys.map { ($0, Self.value(0)) })
            try withMount(seed: seed) { fx throws in
                let tally = Locked(Tally())
                let stop = Locked(false)
                let deadline = Date().addingTimeInterval(Self.seconds)
                var threads: [Thread] = []
                let finished = DispatchGroup()
                func spawn(_ name: String, _ body: @escaping @Sendable () -> Void) {
                    finished.enter()
                    let thread = Thread {
                        body()
                        finished.leave()
                    }
                    thread.name = name
                    threads.append(thread)
                }
                let paths = Self.keys.map(fx.path)
                for r in 0 ..< 8 {
                    spawn("reader \(r)") {
                        var random = SeededRandom(seed: UInt64(r + 1))
                        var buffer = [UInt8](repeating: 0, count: 16384)
                        while !stop.value {
                            let path = paths[Int(random.next() % UInt64(paths.count))]
                            let started = DispatchTime.now().uptimeNanoseconds
                            let fd = open(path, O_RDONLY)
                            guard fd >= 0 else { continue }
                            var bytes: [UInt8] = []
                            while true {
                                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                                if n <= 0 { break }
                                // A slow reader: a change can land between its first read and the rest.
                                if bytes.isEmpty { usleep(500) }
                                bytes += buffer[..<n]
                            }
                            close(fd)
                            let ms = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6
                            let seen = Self.versions(in: bytes)
                            tally.withLock {
                                $0.reads += 1
                                $0.slowestReadMs = max($0.slowestReadMs, ms)
                                if seen.count > 1, $0.mixed.count < 5 { $0.mixed.append("\(path): versions \(seen.sorted())") }
                            }
                        }
                    }
                }
                // Writers save through the mount, each its own keys; versions never repeat.
                for w in 0 ..< 2 {
                    spawn("writer \(w)") {
                        var version = (w + 1) * 1_000_000
                        var random = SeededRandom(seed: UInt64(100 + w))
                        while !stop.value {
                            version += 1
                            let path = paths[w * 10 + Int(random.next() % 10)]
                            let bytes = Array(Self.value(version).utf8)
                            let started = DispatchTime.now().uptimeNanoseconds
                            let fd = open(path, O_WRONLY | O_TRUNC)
                            let wrote = fd >= 0 ? bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } : -1
                            let closed = fd >= 0 ? close(fd) : -1
                            let ms = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6
                            tally.withLock {
                                if wrote == bytes.count && closed == 0 {
                                    $0.saves += 1
                                    $0.slowestSaveMs = max($0.slowestSaveMs, ms)
                                } else if $0.failedSaves.count < 5 {
                                    $0.failedSaves.append("\(path): write \(wrote), close \(closed), errno \(errno)")
                                }
                            }
                        }
                    }
                }
                // Changes made elsewhere (as gossip stores them), on the keys no writer saves.
                spawn("remote") {
                    var version = 5_000_000
                    var random = SeededRandom(seed: 7)
                    while !stop.value {
                        version += 1
                        let key = Self.keys[20 + Int(random.next() % 30)]
                        if (try? fx.node.mint(try Key(key), value: Array(Self.value(version).utf8))) != nil {
                            tally.withLock { $0.remote += 1 }
                        }
                        usleep(5_000)
                    }
                }
                threads.forEach { $0.start() }
                while Date() < deadline { usleep(100_000) }
                stop.withLock { $0 = true }
                finished.wait()

                let t = tally.value
                print(String(format: "hammer %.0f s: %d reads (slowest %.1f ms), %d saves (slowest %.1f ms), %d remote changes",
                             Self.seconds, t.reads, t.slowestReadMs, t.saves, t.slowestSaveMs, t.remote))
                #expect(t.mixed.isEmpty, "reads that mixed versions: \(t.mixed)")
                #expect(t.failedSaves.isEmpty, "saves that failed: \(t.failedSaves)")
                #expect(t.reads > 100 && t.saves > 10 && t.remote > 10, "too little happened to prove anything: \(t)")
                // Every key ends with one whole version, the same in the mount and in the store.
                for key in Self.keys {
                    let onDisk = Array(try String(contentsOfFile: fx.path(key), encoding: .utf8).utf8)
                    #expect(Self.versions(in: onDisk).count == 1, "\(key)")
                    #expect(try fx.values()[key].map { Array($0.utf8) } == onDisk, "\(key)")
                }
            }
        }
    }
}
