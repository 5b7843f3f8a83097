import Foundation
import KVGossipCore
import KVGossipTestSupport
import Testing

extension MountTests {
    @Suite struct DirectoryTests {
        @Test func mkdirMakesLocalDirectoriesThatHoldNewKeys() throws {
            try withMount { fx throws in
                #expect(fx.sh("mkdir -p a/b/c && ls -d a/b/c").ok)
                #expect(fx.settle(from: 0, expected: 0).isEmpty, "directories are not records")
                #expect(fx.sh("rmdir a/b/c && test ! -e a/b/c && test -d a/b").ok)
                let mark = fx.recorder.count
                #expect(fx.sh("echo v > a/b/key").ok)
                #expect(fx.settle(from: mark, expected: 1).map(\.key.path) == ["/a/b/key"])
                let rmdir = fx.sh("rmdir a/b")
                #expect(!rmdir.ok && rmdir.stderr.contains("Directory not empty"), "\(rmdir)")
            }
        }

        @Test func rmDashRLeavesNothingBehind() throws {
            try withMount(seed: ["/t/x/1": "1", "/t/x/2": "2", "/t/y": "3"]) { fx throws in
                let mark = fx.recorder.count
                #expect(fx.sh("rm -r t").ok)
                let made = fx.settle(from: mark, expected: 3)
                #expect(Set(made.map(\.key.path)) == ["/t/x/1", "/t/x/2", "/t/y"] && made.allSatisfy { $0.kind == .tombstone })
                #expect(fx.sh("ls -A").stdout == "")
                #expect(try fx.values().isEmpty)
            }
        }

        @Test func invalidNamesAreRefused() throws {
            try withMount { fx throws in
                let result = fx.sh("echo x > 'has space'")
                #expect(!result.ok && result.stderr.contains("Invalid argument"), "\(result)")
                #expect(!fx.sh("mkdir 'a*b'").ok)
                #expect(try fx.values().isEmpty)
            }
        }

        @Test func renamingADirectoryFallsBackToCopyingKeyByKey() throws {
            try withMount(seed: ["/old/a": "1", "/old/sub/b": "2"]) { fx throws in
                let rename = fx.sh("python3 -c \"import os; os.rename('old', 'new')\"")
                #expect(!rename.ok && rename.stderr.contains("Invalid cross-device link"), "\(rename)")
                let mark = fx.recorder.count
                #expect(fx.sh("mv old new").ok)
                let made = fx.settle(from: mark, expected: 4)
                #expect(made.count == 4)
                #expect(try fx.values() == ["/new/a": "1", "/new/sub/b": "2"])
                #expect(try fx.tombstones() == ["/old/a", "/old/sub/b"])
            }
        }

        @Test func theDirectoryWinsOverAValueAtTheSamePath() throws {
            try withMount(seed: ["/a": "shadowed", "/a/b": "inner"]) { fx throws in
                #expect(fx.sh("test -d a && cat a/b").stdout == "inner")
                #expect(try fx.values() == ["/a": "shadowed", "/a/b": "inner"], "the network keeps both")
                // When the inner key goes, the value shows again.
                try fx.rootMint("/a/b", nil)
                let appeared = Readiness.wait { fx.sh("test -f a && cat a").stdout == "shadowed" }
                #expect(appeared)
            }
        }
    }
}
