import Dispatch
import Foundation
import KVGossipCore
import KVGossipStore
import KVGossipTestSupport
import Testing
@testable import KVGossipMount

/// Who wakes the change follower (Docs/filesystem.md §Changes made elsewhere): a change it must
/// replay does, the mount's own saves do not.
extension MountTests {
    @Suite struct FollowerWakeTests {
        @Test func savesThroughTheMountLeaveTheFollowerAsleepAndChangesFromElsewhereWakeIt() throws {
            try withMount(seed: ["/app/k": "v0\n"]) { fx throws in
                let started = ContinuousClock.now
                let before = fx.mount.debugFollowerSignals()
                let mark = fx.recorder.count
                #expect(fx.sh("for i in $(seq 40); do echo v$i > app/k; done").ok)
                #expect(fx.settle(from: mark, expected: 40).count == 40)
                let signals = fx.mount.debugFollowerSignals() - before
                // Each save used to signal it two or three times. Now a save signals only when the
                // follower passed over its path meanwhile, which takes one of its timeouts (once a
                // second) or a wake-up for 16 quiet changes held, so a few per second at most.
                let seconds = Int((ContinuousClock.now - started).components.seconds) + 1
                #expect(signals <= seconds + 8, "\(signals) signals for 40 saves in about \(seconds) s")
                #expect(fx.sh("cat app/k").stdout == "v40\n")

                // A change stored elsewhere signals it (not left for its timeout) and is replayed.
                let watch = try InotifyWatch([fx.path("/app/k")])
                defer { watch.stop() }
                let beforeRemote = fx.mount.debugFollowerSignals()
                _ = try fx.node.mint(try Key("/app/k"), value: Array("remote\n".utf8))
                #expect(watch.wait { $0.has("CLOSE_WRITE", watched: fx.path("/app/k")) })
                #expect(fx.mount.debugFollowerSignals() > beforeRemote)
                #expect(fx.sh("cat app/k").stdout == "remote\n")
            }
        }

        /// A rewrite from elsewhere costs the follower one sleep: it hands the rewrite to the helper
        /// and goes back to waiting, and reads the answer at its next wake-up. It used to sleep a
        /// second time per change, waiting for that answer.
        @Test func aRewriteFromElsewhereCostsTheFollowerOneSleep() throws {
            try withMount(seed: ["/app/k": "v0\n"]) { fx throws in
                try #require(Readiness.wait(timeout: 30) { fx.mount.debugFollowerThread() > 0 })
                let thread = fx.mount.debugFollowerThread()
                func sleeps() -> Int { ThreadStatus.sleeps(thread) }
                let watch = try InotifyWatch([fx.path("/app/k")])
                defer { watch.stop() }
                let changes = 30
                let before = sleeps()
                for i in 1...changes {
                    _ = try fx.node.mint(try Key("/app/k"), value: Array("r\(i)\n".utf8))
                    #expect(watch.wait { events in events.filter { $0.events.contains("CLOSE_WRITE") }.count >= i })
                }
                let slept = sleeps() - before
                #expect(before >= 0 && slept <= changes * 3 / 2, "the follower slept \(slept) times for \(changes) changes")
                #expect(fx.sh("cat app/k").stdout == "r\(changes)\n")
            }
        }

        /// Hundreds of keys rewritten in one commit (a batch pulled in a sync session) are replayed
        /// in one wake-up. The follower reads the answers to its rewrites later, but never lets more
        /// wait than the helper's channel holds: past that the helper blocks on its answers, stops
        /// reading, and the follower's next send blocks, both for good.
        @Test func hundredsOfRewritesInOneCommitAreAllReplayed() throws {
            let count = 600
            let name = { (i: Int) in "/app/k" + String(1000 + i) }
            let seed = Dictionary(uniqueKeysWithValues: (0..<count).map { (name($0), "old\n") })
            try withMount(seed: seed) { fx throws in
                let later = UInt64(Date().timeIntervalSince1970 * 1000) + 1_000
                let batch = try (0..<count).map { i in
                    Record(cluster: Keys.root.publicKey, key: try Key(name(i)), kind: .value, value: Array("new \(i)\n".utf8),
                           timestamp: HLC(physicalMs: later), signer: Keys.root, pool: [])
                }
                let outcomes = try fx.store.apply(batch, origin: .pulled(from: PeerAddress(host: "10.0.0.2", port: 7946)))
                #expect(outcomes.allSatisfy { $0.isAccepted })
                let last = name(count - 1)
                #expect(Readiness.wait(timeout: 60) { fx.sh("cat app/k\(1000 + count - 1)").stdout == "new \(count - 1)\n" }, "\(last) never replayed")
                let shown = fx.sh("cat app/k*").stdout
                #expect(shown == (0..<count).map { "new \($0)\n" }.joined())
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
            // Both objects stay alive: a freed one's address, and so its identifier, can be reused.
            let mountObject = Marker(), otherObject = Marker()
            defer { withExtendedLifetime((mountObject, otherObject)) {} }
            let mount = ObjectIdentifier(mountObject), other = ObjectIdentifier(otherObject)
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

            // Bound on a thread outside any task (as on a FUSE worker), it is that thread's save; a
            // task started meanwhile inherits the value but is not the save.
            let seen = Locked<[String: Bool]>([:])
            let done = DispatchSemaphore(value: 0)
            Thread {
                OwnSave.$current.withValue(save) {
                    seen.withLock { $0["thread"] = OwnSave.isCurrent([own], of: mount) }
                    Task {
                        seen.withLock { $0["task"] = OwnSave.isCurrent([own], of: mount) }
                        done.signal()
                    }
                }
            }.start()
            #expect(done.wait(timeout: .now() + 30) == .success)
            #expect(seen.withLock { $0 } == ["thread": true, "task": false])
            #expect(!OwnSave.isCurrent([own], of: mount))
        }

        final class Marker {}
    }
}
