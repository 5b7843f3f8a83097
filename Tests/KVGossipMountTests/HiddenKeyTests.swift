import Foundation
import KVGossipCore
import Testing
@testable import KVGossipMount

/// Keys renamed onto scratch names: hidden, then tombstoned unless re-created (HiddenKeys.swift).
extension MountTests {
    @Suite struct HiddenKeyTests {
        static var shortGrace: MountOptions {
            var options = MountOptions()
            options.hiddenGraceMs = 300
            return options
        }

        @Test func aKeyMovedOntoAScratchNameIsTombstonedAfterTheGracePeriod() throws {
            try withMount(seed: ["/app/k": "v"], options: Self.shortGrace) { fx throws in
                let mark = fx.recorder.count
                #expect(fx.sh("mv app/k app/.k.old").ok)
                let made = fx.settle(from: mark, expected: 1)
                #expect(made.map(\.key.path) == ["/app/k"] && made.first?.kind == .tombstone)
                #expect(fx.sh("cat app/.k.old").stdout == "v", "the local copy stays")
                #expect(fx.hiddenKeys().isEmpty)
            }
        }

        @Test func stopResolvesPendingRenames() throws {
            try withMount(seed: ["/app/k": "v"]) { fx throws in
                #expect(fx.sh("mv app/k app/k~").ok)
                fx.mount.stop()
                #expect(try fx.tombstones() == ["/app/k"])
            }
        }
    }
}
