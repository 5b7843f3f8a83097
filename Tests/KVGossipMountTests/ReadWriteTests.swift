import Foundation
import KVGossipCore
import Testing

extension MountTests {
    /// Reading and writing keys with shell tools: each saved value is exactly one record.
    @Suite struct ReadWriteTests {
        @Test func catShowsTheStoredValueAndItsAttributes() throws {
            try withMount(seed: ["/app/db/url": "postgres://db\n"]) { fx throws in
                let cat = fx.sh("cat app/db/url")
                #expect(cat.ok && cat.stdout == "postgres://db\n", "\(cat)")
                let stat = fx.sh("stat -c '%F %a %s %u:%g' app/db/url app/db app")
                #expect(stat.stdout == "regular file 644 14 0:0\ndirectory 755 0 0:0\ndirectory 755 0 0:0\n", "\(stat)")
                // mtime is the record's time.
                let record = try #require(try fx.store.record(Key("/app/db/url")))
                let mtime = fx.sh("stat -c %Y app/db/url").stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(UInt64(mtime) == record.timestamp.physicalMs / 1000)
                #expect(fx.sh("ls -a app/db").stdout == ".\n..\nurl\n")
            }
        }

        @Test func echoRedirectMintsOneRecordForExistingAndNewKeys() throws {
            try withMount(seed: ["/app/name": "old\n"]) { fx throws in
                var mark = fx.recorder.count
                #expect(fx.sh("echo new > app/name").ok)
                var made = fx.settle(from: mark, expected: 1)
                #expect(made.map(\.text) == ["new\n"], "bash's extra FLUSH must not mint an empty value first")
                #expect(fx.sh("cat app/name").stdout == "new\n")

                mark = fx.recorder.count
                #expect(fx.sh("echo hello > app/fresh").ok)
                made = fx.settle(from: mark, expected: 1)
                #expect(made.map(\.key.path) == ["/app/fresh"] && made.map(\.text) == ["hello\n"])
                #expect(try fx.values() == ["/app/name": "new\n", "/app/fresh": "hello\n"])
                #expect(try fx.tombstones().isEmpty)
            }
        }

        @Test func appendAddsToTheCurrentValue() throws {
            try withMount(seed: ["/app/list": "one\n"]) { fx throws in
                let mark = fx.recorder.count
                #expect(fx.sh("echo two >> app/list").ok)
                #expect(fx.settle(from: mark, expected: 1).map(\.text) == ["one\ntwo\n"])
                #expect(fx.sh("cat app/list").stdout == "one\ntwo\n")
            }
        }

        @Test func teeAndCpWriteOneRecordEach() throws {
            try withMount(seed: ["/app/a": "a\n"]) { fx throws in
                var mark = fx.recorder.count
                #expect(fx.sh("printf 'from tee\\n' | tee app/a > /dev/null").ok)
                #expect(fx.settle(from: mark, expected: 1).map(\.text) == ["from tee\n"])

                let source = fx.directory + "/source.txt"
                try "copied\n".write(toFile: source, atomically: true, encoding: .utf8)
                mark = fx.recorder.count
                #expect(fx.sh("cp '\(source)' app/a && cp '\(source)' app/b").ok)
                let made = fx.settle(from: mark, expected: 2)
                #expect(made.map(\.key.path) == ["/app/a", "/app/b"] && made.allSatisfy { $0.text == "copied\n" })
                #expect(try fx.values() == ["/app/a": "copied\n", "/app/b": "copied\n"])
            }
        }

        @Test func truncateAndColonRedirectEmptyTheValue() throws {
            try withMount(seed: ["/app/t": "something\n", "/app/u": "other\n"]) { fx throws in
                var mark = fx.recorder.count
                #expect(fx.sh("truncate -s 0 app/t").ok)
                #expect(fx.settle(from: mark, expected: 1).map(\.text) == [""])
                #expect(fx.sh("stat -c %s app/t").stdout == "0\n")

                // `: > f` writes nothing: committed at RELEASE, still exactly once.
                mark = fx.recorder.count
                #expect(fx.sh(": > app/u").ok)
                #expect(fx.settle(from: mark, expected: 1).map(\.text) == [""])
                #expect(try fx.values() == ["/app/t": "", "/app/u": ""])
            }
        }

        @Test func touchCreatesAnEmptyKeyAndLeavesExistingOnesAlone() throws {
            try withMount(seed: ["/app/kept": "v\n"]) { fx throws in
                let mark = fx.recorder.count
                #expect(fx.sh("touch app/new app/kept").ok)
                let made = fx.settle(from: mark, expected: 1)
                #expect(made.map(\.key.path) == ["/app/new"] && made.map(\.text) == [""])
                #expect(try fx.values() == ["/app/kept": "v\n", "/app/new": ""])
            }
        }

        /// A file created with O_CREAT|O_RDONLY (as lock files are) becomes an empty key when it is
        /// closed. Its RELEASE carries read-only flags, as a reader's does, yet it commits: the
        /// read turn must be given up for that commit (Docs/filesystem.md §One reader at a time), and
        /// readers looping meanwhile are all answered.
        @Test func aFileCreatedReadOnlyIsCommittedAtItsCloseWhileReadersLoop() throws {
            try withMount(seed: ["/app/read": "value\n"]) { fx throws in
                let mark = fx.recorder.count
                let script = """
                    import os, threading
                    def read_loop(results):
                        for _ in range(2000):
                            fd = os.open('app/read', os.O_RDONLY)
                            results.append(os.read(fd, 64))
                            os.close(fd)
                    results = [[], []]
                    readers = [threading.Thread(target=read_loop, args=(r,)) for r in results]
                    for t in readers: t.start()
                    for name in ('app/lock1', 'app/lock2', 'app/lock3'):
                        os.close(os.open(name, os.O_CREAT | os.O_RDONLY, 0o644))
                    for t in readers: t.join()
                    print(sum(1 for r in results for v in r if v == b'value\\n'))
                    """
                let result = fx.sh("python3 -c \"\(script)\"", timeout: 60)
                #expect(result.stdout == "4000\n", "\(result)")
                let made = fx.settle(from: mark, expected: 3)
                #expect(Set(made.map(\.key.path)) == ["/app/lock1", "/app/lock2", "/app/lock3"] && made.map(\.text) == ["", "", ""])
                #expect(try fx.values() == ["/app/read": "value\n", "/app/lock1": "", "/app/lock2": "", "/app/lock3": ""])
            }
        }

        @Test func aReaderKeepsTheVersionItOpened() throws {
            try withMount(seed: ["/app/v": "first version\n"]) { fx throws in
                // The shell opens the file once; the value changes before it reads.
                let result = fx.sh("exec 3< app/v; echo second > app/v; cat <&3; cat app/v")
                #expect(result.stdout == "first version\nsecond\n", "\(result)")
            }
        }

        @Test func aReaderKeepsTheVersionItOpenedAcrossAnAtomicReplace() throws {
            try withMount(seed: ["/app/v": "first version\n"]) { fx throws in
                // Python's write-then-os.replace swaps the inode under the reader; `cat` fstats its
                // descriptor (a GETATTR without a handle) before it reads.
                let replace = "import os\nwith open('app/.v.tmp', 'w') as f: f.write('second\\n')\nos.replace('app/.v.tmp', 'app/v')"
                let result = fx.sh("exec 3< app/v; python3 -c \"\(replace)\"; cat <&3; cat app/v")
                #expect(result.stdout == "first version\nsecond\n", "\(result)")
            }
        }

        @Test func writesAtOffsetsEditTheBufferLikeALocalFile() throws {
            try withMount(seed: ["/app/o": "hello world\n"]) { fx throws in
                let mark = fx.recorder.count
                let script = "import os\nfd = os.open('app/o', os.O_RDWR)\nos.pwrite(fd, b'HELLO', 0)\nos.pwrite(fd, b'!', 11)\nos.ftruncate(fd, 12)\nos.close(fd)"
                #expect(fx.sh("python3 -c \"\(script)\"").ok)
                #expect(fx.settle(from: mark, expected: 1).map(\.text) == ["HELLO world!"])
            }
        }
    }
}
