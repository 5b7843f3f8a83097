import Foundation
import KVGossipCore
import KVGossipMount
import Testing

extension MountTests {
    @Suite struct ScratchTests {
        @Test func scratchNamesStayInMemoryAndNeverBecomeKeys() throws {
            try withMount(seed: ["/app/x": "x"]) { fx throws in
                let names = [".hidden", "notes~", "4913", "#draft#", "x.swp", ".x.swx", "x.swpx", "sedAb12Cd"]
                let writes = names.map { "echo data > 'app/\($0)'" }.joined(separator: " && ")
                #expect(fx.sh(writes).ok)
                #expect(fx.sh("mkdir -p app/.cache/deep && echo y > app/.cache/deep/file && cat app/.cache/deep/file").stdout == "y\n")
                for name in names { #expect(fx.sh("cat 'app/\(name)'").stdout == "data\n") }
                #expect(fx.settle(from: 0, expected: 0).isEmpty)
                #expect(try fx.values() == ["/app/x": "x"])
                let left = fx.sh("rm -r app/.cache && rm app/.hidden app/notes~ && ls -A app").stdout.split(separator: "\n").map(String.init)
                #expect(Set(left) == ["#draft#", "4913", "sedAb12Cd", "x", "x.swp", ".x.swx", "x.swpx"])
                #expect(try fx.tombstones().isEmpty)
            }
        }

        @Test func theScratchListIsConfigurable() throws {
            var options = MountOptions()
            options.scratchPatterns = ["*.tmp"]
            try withMount(options: options) { fx throws in
                #expect(fx.sh("echo a > app.tmp && echo b > 4913").ok)
                let made = fx.settle(from: 0, expected: 1)
                #expect(made.map(\.key.path) == ["/4913"])
                // Dot names are never keys (Docs/contract.md §Keys) whatever the list says.
                #expect(!fx.sh("echo c > .dot").ok)
            }
        }
    }
}

