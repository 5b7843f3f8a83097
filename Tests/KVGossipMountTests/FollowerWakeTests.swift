import Dispatch
import Foundation
import KVGossipCore
import KVGossipStore
import Testing
@testable import KVGossipMount

/// Who wakes the change follower (Docs/filesystem.md §Changes made elsewhere): a change it must
/// replay does, the mount's own saves do not.
extension MountTests {
    @Suite struct FollowerWakeTests {
        @Test func savesThroughTheMountLeaveTheFollowerAsleepAndChangesFromElsewhereWakeIt() throws {
            try withMount(seed: ["/app/k": "v0\n"]) { fx throws in
                let started = ContinuousClock.now
                let before = fx.mount.debugFollowerWakeUps()
                let mark = fx.recorder.count
                #expect(fx.sh("for i in $(seq 40); do echo v$i > app/k; done").ok)
                #expect(fx.settle(from: mark, expected: 40).count == 40)
                let woken = fx.mount.debugFollowerWakeUps() - before
                // Its timeout wakes it once a second; each save used to wake it two or three times.
                let seconds = Int((ContinuousClock.now - started).components.seconds) + 1
                #expect(woken <= seconds + 8, "\(woken) wake-ups for 40 saves in about \(seconds) s")
                #expect(fx.sh("cat app/k").stdout == "v40\n")

                // A change stored elsewhere is replayed into the file.
                let watch = try InotifyWatch([fx.path("/app/k")])
                defer { watch.stop() }
                _ = try fx.node.mint(try Key("/app/k"), value: Array("remote\n".utf8))
                #expect(watch.wait { $0.has("CLOSE_WRITE", watched: fx.path("/app/k")) })
                #expect(fx.sh("cat app/k").stdout == "remote\n")
            }
        }

        @Test func aQuietChangeWaitsForTheNextWakeUpUntilTooManyAreHeld() {
            let wake = DispatchSemaphore(value: 0)
            let inbox = ChangeInbox(wake: wake)
            let change = StoreChange.record(ReplayPlanTests.record("/k", "v", at: 1_000), previous: nil, origin: .local)
            inbox.add([change], quiet: true)
            #expect(wake.wait(timeout: .now()) == .timedOut)
            inbox.add([change])
            #expect(wake.wait(timeout: .now()) == .success)
            #expect(inbox.take().changes.count == 2)

            for _ in 0..<ChangeInbox.quietLimit { inbox.add([change], quiet: true) }
            #expect(wake.wait(timeout: .now()) == .timedOut)
            inbox.add([change], quiet: true)
            #expect(wake.wait(timeout: .now()) == .success, "past the limit a quiet change wakes the follower too")
        }

        @Test func onlyTheMountsOwnRecordOfTheSavedKeyIsItsOwnSave() throws {
            let mount = ObjectIdentifier(FollowerWakeTests.Marker()), other = ObjectIdentifier(FollowerWakeTests.Marker())
            let save = OwnSave(mount: mount, key: try Key("/k"))
            let own = StoreChange.record(ReplayPlanTests.record("/k", "v", at: 1_000), previous: nil, origin: .local)
            let otherKey = StoreChange.record(ReplayPlanTests.record("/j", "v", at: 1_000), previous: nil, origin: .local)
            let pushed = StoreChange.record(
                ReplayPlanTests.record("/k", "v", at: 1_000), previous: nil, origin: .pushed(by: PeerAddress(host: "10.0.0.2", port: 7946)))
            #expect(save.isOnly([own], of: mount))
            #expect(!save.isOnly([own], of: other))
            #expect(!save.isOnly([], of: mount))
            #expect(!save.isOnly([otherKey], of: mount))
            #expect(!save.isOnly([own, otherKey], of: mount))
            #expect(!save.isOnly([pushed], of: mount))
            let unset = StoreChange.unset(try Key("/k"), previous: ReplayPlanTests.record("/k", "v", at: 1_000).version)
            #expect(!save.isOnly([own, unset], of: mount))
        }

        final class Marker {}
    }
}
