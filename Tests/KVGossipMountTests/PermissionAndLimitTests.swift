import Foundation
import KVGossipCore
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
