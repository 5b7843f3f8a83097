import Foundation
import KVGossipTestSupport
import Synchronization
import Testing
@testable import KVGossipMount

/// The replay helper is kept running (Docs/filesystem.md §The replay helper): one that dies is
/// started again and the changes made meanwhile are replayed; while none can start, `status` says
/// so; and a helper does not die with the thread that mounted.
extension MountTests {
    @Suite struct HelperSupervisionTests {
        /// Stops the mount's helper with SIGSTOP, once it has stopped; its process id.
        static func stopHelper(_ fx: MountFixture) throws -> pid_t {
            let helper = try #require(fx.mount.debugReplayHelper())
            kill(helper, SIGSTOP)
            #expect(Readiness.wait { ProcessState.of(helper) == "T" }, "the helper did not stop")
            return helper
        }

        @Test func aKilledHelperIsStartedAgainAndTheChangeMadeMeanwhileIsReplayed() throws {
            try withMount(seed: ["/app/k": "v0\n"]) { fx throws in
                let watch = try InotifyWatch([fx.path("/app/k")])
                defer { watch.stop() }
                let first = try #require(fx.mount.debugReplayHelper())
                kill(first, SIGKILL)
                #expect(Readiness.wait { ProcessState.of(first).map { $0 == "Z" } ?? true }, "the helper did not die")
                try fx.rootMint("/app/k", "after\n")
                #expect(watch.wait { $0.has("CLOSE_WRITE", watched: fx.path("/app/k")) }, "the change made while the helper was dead was not replayed")
                #expect(fx.sh("cat app/k").stdout == "after\n")
                #expect(fx.mount.debugReplayHelper().map { $0 != first } == true)
                #expect(fx.mount.helperRestarts == 1)
                #expect(fx.mount.problem == nil)
            }
        }

        /// A helper that dies owing the answer to a rewrite: the follower settles with it before
        /// it is replaced (from the new helper that answer would be waited for, for ever), and the
        /// next change is replayed.
        @Test func aHelperThatDiesOwingAnAnswerIsReplacedWithoutWaitingForIt() throws {
            try withMount(seed: ["/app/k": "v0\n"]) { fx throws in
                let first = try Self.stopHelper(fx)
                try fx.rootMint("/app/k", "owed\n")
                #expect(Readiness.wait { fx.mount.debugDeliveriesInFlight() == ["/app/k"] }, "the follower sent no rewrite")
                kill(first, SIGKILL)
                // Found gone by the follower's look at the channel (at most a second later), the
                // rewrite's answer still owed.
                #expect(Readiness.wait { fx.mount.debugReplayHelper().map { $0 != first } == true }, "the helper was not replaced")
                let watch = try InotifyWatch([fx.path("/app/k")])
                defer { watch.stop() }
                try fx.rootMint("/app/k", "next\n")
                let replayed = watch.wait { $0.has("CLOSE_WRITE", watched: fx.path("/app/k")) }
                // A follower stuck on the new helper would hold the mount's stop too: ending that
                // helper frees it, so the failure is reported rather than hung.
                if !replayed, let stuck = fx.mount.debugReplayHelper() { kill(stuck, SIGKILL) }
                #expect(replayed, "the change after the replacement was not replayed")
                #expect(fx.sh("cat app/k").stdout == "next\n")
            }
        }

        /// A helper that stops answering (here SIGSTOP) is killed once it has not answered for
        /// the answer timeout, and replaced like one that died; the new key it was to create is
        /// created by the next one.
        @Test func aHelperThatStopsAnsweringIsKilledAndReplaced() throws {
            var options = MountOptions()
            // Long enough for the next helper's create on a busy machine, which the same deadline bounds.
            options.helperAnswerTimeoutMs = 1_000
            try withMount(seed: ["/app/k": "v0\n"], options: options) { fx throws in
                let watch = try InotifyWatch([fx.path("/app") + "/"])
                defer { watch.stop() }
                let first = try Self.stopHelper(fx)
                try fx.rootMint("/app/new", "created\n")
                let replayed = watch.wait { $0.has("CLOSE_WRITE", watched: fx.path("/app") + "/", name: "new") }
                if !replayed { kill(first, SIGKILL) }
                #expect(replayed, "the new key was not created through a new helper: \(watch.events)")
                #expect(fx.mount.debugReplayHelper().map { $0 != first } == true)
                #expect(fx.mount.helperRestarts == 1)
                #expect(Readiness.wait { ProcessState.of(first) == nil }, "the stopped helper was not killed and reaped")
                #expect(fx.sh("cat app/new").stdout == "created\n")
            }
        }

        /// The mount stops at once while the follower waits on a helper that does not answer,
        /// long before the answer timeout (30 s) would have freed it.
        @Test func theMountStopsWhileItsHelperDoesNotAnswer() throws {
            try withMount(seed: ["/app/k": "v0\n"]) { fx throws in
                let first = try Self.stopHelper(fx)
                try fx.rootMint("/app/new", "created\n")
                #expect(Readiness.wait { fx.mount.debugDeliveriesInFlight() == ["/app/new"] }, "the follower sent no create")
                let stopped = DispatchSemaphore(value: 0)
                Thread {
                    fx.mount.stop()
                    stopped.signal()
                }.start()
                let stoppedInTime = stopped.wait(timeout: .now() + 10) == .success
                if !stoppedInTime {
                    // Free the stop, so the failure is reported rather than hung.
                    kill(first, SIGKILL)
                    _ = stopped.wait(timeout: .now() + 60)
                }
                #expect(stoppedInTime, "the mount's stop waited on the helper")
                #expect(!fx.mount.isMounted)
                #expect(Readiness.wait { ProcessState.of(first) == nil }, "the stopped helper was not ended")
            }
        }

        /// The helper's command fails while a flag file exists: killed then, the helper cannot be
        /// started again, which `problem` (what `status` shows) says, and a change made then is
        /// replayed once the flag is gone and a helper runs.
        @Test func aHelperThatCannotStartIsAProblemUntilOneRuns() throws {
            let flag = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-helper-fails-\(getpid())").path
            defer { unlink(flag) }
            var options = MountOptions()
            options.helperCommand = ["/bin/sh", "-c", "[ -e \"\(flag)\" ] && exit 1; exec \"\(MountFixture.kvgossipBinary)\" mount-helper \"$@\"", "helper"]
            try withMount(seed: ["/app/k": "v0\n"], options: options) { fx throws in
                let watch = try InotifyWatch([fx.path("/app/k")])
                defer { watch.stop() }
                #expect(FileManager.default.createFile(atPath: flag, contents: nil))
                let first = try #require(fx.mount.debugReplayHelper())
                kill(first, SIGKILL)
                #expect(Readiness.wait { fx.mount.problem?.contains("replay helper has not run since") == true }, "no problem reported: \(fx.mount.problem ?? "nil")")
                try fx.rootMint("/app/k", "while down\n")
                // Read right away, watched only once a helper runs.
                #expect(fx.sh("cat app/k").stdout == "while down\n")
                #expect(!watch.events.contains { $0.events.contains("CLOSE_WRITE") })
                unlink(flag)
                #expect(watch.wait { $0.has("CLOSE_WRITE", watched: fx.path("/app/k")) }, "the change made while no helper ran was not replayed")
                #expect(Readiness.wait { fx.mount.problem == nil }, "\(fx.mount.problem ?? "")")
            }
        }

        /// The helper keeps its channel and the mount's root, and none of the descriptors of the
        /// process that started it (this test process holds many without close-on-exec, as the
        /// agent holds its listening sockets).
        @Test func theHelperHoldsOnlyItsChannelAndTheMountsRoot() throws {
            try withMount(seed: ["/app/k": "v0\n"]) { fx throws in
                let helper = try #require(fx.mount.debugReplayHelper())
                let held = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(helper)/fd").compactMap(Int32.init).filter { $0 > 2 }
                let targets = held.map { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(helper)/fd/\($0)")) ?? "?" }
                #expect(held.count == 2, "the helper holds \(targets)")
                #expect(targets.filter { $0.hasPrefix("socket:") }.count == 1, "\(targets)")
                #expect(targets.contains(fx.mountpoint), "\(targets)")
            }
        }

        /// The helper asks for SIGKILL when the thread that started it ends: a mount started by a
        /// thread that then ends (as the agent's thread that mounts again after a loss does) keeps
        /// its helper.
        @Test func theHelperOutlivesTheThreadThatMounted() throws {
            try withMount(seed: ["/app/k": "v0\n"]) { fx throws in
                fx.mount.stop()
                var thread = pthread_t()
                let started = Mutex<(any Error)?>(nil)
                let box = Unmanaged.passRetained(StartBox { do { try fx.mount.start() } catch { started.withLock { $0 = error } } })
                #expect(pthread_create(&thread, nil, { StartBox.run($0) }, box.toOpaque()) == 0)
                #expect(pthread_join(thread, nil) == 0)
                if let error = started.withLock({ $0 }) { throw error }
                let helper = try #require(fx.mount.debugReplayHelper())
                let watch = try InotifyWatch([fx.path("/app/k")])
                defer { watch.stop() }
                try fx.rootMint("/app/k", "later\n")
                #expect(watch.wait { $0.has("CLOSE_WRITE", watched: fx.path("/app/k")) })
                #expect(fx.mount.debugReplayHelper() == helper, "the helper died with the thread that mounted and was replaced")
            }
        }
    }
}

/// A body for `pthread_create`, which takes a C function and one pointer.
private final class StartBox {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }

    static func run(_ pointer: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
        Unmanaged<StartBox>.fromOpaque(pointer!).takeRetainedValue().body()
        return nil
    }
}
