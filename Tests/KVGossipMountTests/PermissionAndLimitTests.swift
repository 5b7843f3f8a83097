import Foundation
import KVGossipCore
import KVGossipStore
import KVGossipTestSupport
import Testing

extension MountTests {
    @Suite struct PermissionAndLimitTests {
        @Test func keysOutsideTheNodesGrantsAreReadOnly() throws {
            let grant = Keys.grant(to: Keys.alice, ["/app/**"])
            try withMount(nodeKey: Keys.alice, grants: [grant], seed: ["/app/mine": "m", "/other/theirs": "t"]) { fx throws in
                #expect(fx.sh("stat -c '%n %a' app/mine other/theirs").stdout == "app/mine 644\nother/theirs 444\n")
                let denied = fx.sh("echo x > other/theirs")
                #expect(!denied.ok && denied.stderr.contains("Permission denied"), "\(denied)")
                let create = fx.sh("echo x > other/new")
                #expect(!create.ok && create.stderr.contains("Permission denied"), "\(create)")
                #expect(!fx.sh("rm -f other/theirs").ok)
                #expect(!fx.sh("mv app/mine other/moved").ok)
                let mark = fx.recorder.count
                #expect(fx.sh("echo ok > app/mine && echo new > app/new").ok)
                let made = fx.settle(from: mark, expected: 2)
                #expect(made.map(\.key.path) == ["/app/mine", "/app/new"])
                #expect(made.allSatisfy { $0.signer == Keys.alice.publicKey })
                #expect(try fx.values() == ["/app/mine": "ok\n", "/app/new": "new\n", "/other/theirs": "t"])
                #expect(fx.sh("getfattr --only-values -n user.kvgossip.writable other/theirs").stdout == "0")
            }
        }

        /// A save whose authority goes while the file is open (the node's grant revoked between
        /// open and close) fails at close with EACCES, the error `close()` reports for a refused
        /// commit (Docs/filesystem.md §Errors), and the stored value stays. The revocation also
        /// reaches the mount: the key the node wrote under that grant goes, and the keys it could
        /// write show read-only (Docs/filesystem.md §Changes made elsewhere).
        @Test func aSaveWhoseGrantIsRevokedBeforeCloseFailsWithPermissionDenied() throws {
            let grant = Keys.grant(to: Keys.alice, ["/app/**"])
            try withMount(nodeKey: Keys.alice, grants: [grant], seed: ["/app/mine": "m"]) { fx throws in
                let mark = fx.recorder.count
                #expect(fx.sh("echo h > app/hers").ok)
                #expect(fx.settle(from: mark, expected: 1).map(\.signer) == [Keys.alice.publicKey])
                let opened = fx.mountpoint + "/../opened", proceed = fx.mountpoint + "/../proceed"
                let saver = Process()
                saver.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
                saver.arguments = ["-c", """
                    import os, sys, time
                    f = open(sys.argv[1], "w")
                    f.write("new")
                    open(sys.argv[2], "w").close()
                    while not os.path.exists(sys.argv[3]): time.sleep(0.01)
                    try:
                        f.close()
                        print("closed")
                    except OSError as e:
                        print(os.strerror(e.errno))
                    """, fx.path("/app/mine"), opened, proceed]
                let out = Pipe()
                saver.standardOutput = out
                try saver.run()
                defer { if saver.isRunning { saver.terminate() } }
                #expect(Readiness.wait { FileManager.default.fileExists(atPath: opened) }, "the saver never opened the file")
                let revocation = Revocation(cluster: Keys.root.publicKey, grant: grant, revokedAt: Store.systemClockMs(), signer: Keys.root)
                _ = try fx.store.apply(revocation)
                #expect(FileManager.default.createFile(atPath: proceed, contents: nil))
                saver.waitUntilExit()
                let said = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                #expect(said.contains("Permission denied"), "close said: \(said)")
                #expect(try fx.values()["/app/mine"] == "m", "the refused save was stored")
                #expect(Readiness.wait { !FileManager.default.fileExists(atPath: fx.path("/app/hers")) }, "the unset key is still shown")
                #expect(Readiness.wait { fx.sh("stat -c %a app/mine").stdout == "444\n" }, "the revoked node's key still shows writable")
            }
        }

        /// What the mount refuses or ignores (Docs/filesystem.md §Mapping): links, symlinks and
        /// device nodes give EPERM; chmod, chown and touch on a key succeed and change nothing; a
        /// truncate(2) by path, with no handle, mints the value cut to the new size; a scratch file
        /// stops at 64 MiB with EFBIG.
        @Test func linksAreRefusedModesIgnoredTruncateByPathMintsAndScratchIsCapped() throws {
            try withMount(seed: ["/app/k": "abcdef"]) { fx throws in
                for refused in ["ln app/k app/hard", "ln -s k app/soft", "mknod app/fifo p"] {
                    let r = fx.sh(refused)
                    #expect(!r.ok && r.stderr.contains("Operation not permitted"), "\(refused): \(r)")
                }
                let mark = fx.recorder.count
                #expect(fx.sh("chmod 600 app/k && chown 1:1 app/k && touch app/k").ok)
                #expect(fx.sh("stat -c '%a %u:%g' app/k").stdout == "644 0:0\n")
                #expect(fx.sh("python3 -c \"import os; os.truncate(\\\"app/k\\\", 3)\"").ok)
                let made = fx.settle(from: mark, expected: 1)
                #expect(made.map(\.key.path) == ["/app/k"] && made.map(\.text) == ["abc"], "\(made.map(\.text))")
                let big = fx.sh("head -c 67108865 /dev/zero > app/.scratch")
                #expect(!big.ok && big.stderr.contains("File too large"), "\(big)")
                #expect(fx.sh("head -c 67108864 /dev/zero > app/.scratch && rm app/.scratch").ok)
            }
        }

        @Test func aValueOverTheLimitFailsWithFileTooLargeAndKeepsTheOldValue() throws {
            try withMount(seed: ["/app/big": "small\n"]) { fx throws in
                let mark = fx.recorder.count
                let write = fx.sh("head -c 2097152 /dev/zero > app/big")
                #expect(!write.ok && write.stderr.contains("File too large"), "\(write)")
                let append = fx.sh("head -c 1048577 /dev/zero >> app/big")
                #expect(!append.ok && append.stderr.contains("File too large"), "\(append)")
                let fresh = fx.sh("head -c 2097152 /dev/zero > app/huge")
                #expect(!fresh.ok && fresh.stderr.contains("File too large"), "\(fresh)")
                #expect(fx.settle(from: mark, expected: 0).isEmpty)
                #expect(try fx.values() == ["/app/big": "small\n"])
                #expect(fx.sh("cat app/big; ls app").stdout == "small\nbig\n")
                // Exactly the limit is fine.
                #expect(fx.sh("head -c 1048576 /dev/zero > app/big").ok)
                #expect(try fx.store.record(Key("/app/big"))?.value.count == 1 << 20)
            }
        }
    }
}
