import CFuse3
import Foundation
import Glibc
import KVGossipCore
import KVGossipNode
import KVGossipStore
import Logging
import KVGossipTestSupport
import Testing
@testable import KVGossipMount

extension MountTests {
    @Suite struct LifecycleTests {
        @Test func stopUnmountsCleanlyAndStartMountsAgain() throws {
            try withMount(seed: ["/k": "v"]) { fx throws in
                #expect(fx.mount.isMounted)
                #expect(StaleMount.entries(at: fx.mountpoint).count == 1)
                fx.mount.stop()
                fx.mount.stop()
                #expect(!fx.mount.isMounted)
                #expect(StaleMount.entries(at: fx.mountpoint).isEmpty)
                try fx.mount.start()
                #expect(fx.mount.isMounted && fx.sh("cat k").stdout == "v")
            }
        }

        /// procfs files report a size of 0, and a reader that trusts the size got 4095 bytes: with a
        /// mount table larger than that (any systemd host with containers) the mount, appended
        /// last, was not found, and the watch took it for lost at once and remounted for ever.
        @Test func theMountIsFoundAtTheEndOfAMountTableOfManyPages() throws {
            let base = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-many-\(UUID().uuidString)").path
            var mounted: [String] = []
            defer {
                for path in mounted.reversed() { _ = umount2(path, Int32(MNT_DETACH)) }
                try? FileManager.default.removeItem(atPath: base)
            }
            for i in 0 ..< 80 {
                let path = "\(base)/\(i)"
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
                guard Glibc.mount("kvgtest", path, "tmpfs", 0, "size=4k") == 0 else {
                    Issue.record("mount tmpfs at \(path): errno \(errno)")
                    return
                }
                mounted.append(path)
            }
            try withMount(seed: ["/k": "v"]) { fx throws in
                let table = try #require(StaleMount.mountTable())
                #expect(table.utf8.count > 8192, "the table is \(table.utf8.count) bytes; the test needs more than two pages")
                #expect(StaleMount.entries(at: fx.mountpoint).count == 1)
                // Still the first mount: the table watch did not take it for lost and remount.
                #expect(fx.sh("cat k").stdout == "v")
                #expect(StaleMount.entries(at: fx.mountpoint).count == 1 && fx.mount.isMounted)
            }
        }

        @Test func startRecoversAMountLeftByACrashedProcess() throws {
            try withMount(seed: ["/k": "v"]) { fx throws in
                fx.mount.stop()
                // What a SIGKILLed daemon leaves: the mount stays, its connection is gone.
                try StaleMountMaker.leaveDeadMount(at: fx.mountpoint)
                let probe = fx.sh("stat .", timeout: 5)
                #expect(probe.stderr.contains("Transport endpoint is not connected"), "\(probe)")
                try fx.mount.start()
                #expect(fx.sh("cat k").stdout == "v")
                #expect(StaleMount.entries(at: fx.mountpoint).count == 1)
            }
        }

        @Test func startRefusesALiveMount() throws {
            try withMount { fx throws in
                let second = Mount(node: fx.node, mountpoint: fx.mountpoint, options: MountOptions(), logger: Logger(label: "second"))
                #expect(throws: MountError.self) { try second.start() }
                #expect(fx.mount.isMounted)
            }
        }

        @Test func busyMountpointStillStops() throws {
            try withMount(seed: ["/k": "v"]) { fx throws in
                // A process sitting inside the mount makes a plain unmount fail with EBUSY.
                let holder = Process()
                holder.executableURL = URL(fileURLWithPath: "/bin/sh")
                holder.arguments = ["-c", "exec 3< k; sleep 30"]
                holder.currentDirectoryURL = URL(fileURLWithPath: fx.mountpoint)
                try holder.run()
                defer { kill(holder.processIdentifier, SIGKILL) }
                // Wait until the holder's fd 3 is open on the key.
                #expect(Readiness.wait {
                    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(holder.processIdentifier)/fd/3")) == fx.path("/k")
                })
                fx.mount.stop()
                #expect(!fx.mount.isMounted)
                #expect(StaleMount.entries(at: fx.mountpoint).isEmpty)
            }
        }

        /// A mount that cannot be detached is reported with what fusermount3 said too, not only
        /// the kernel's errno for umount2 (the helper's own words were thrown away).
        @Test func aDetachThatFailsSaysWhatFusermountSaid() throws {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-notmounted-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let reason = try #require(StaleMount.detach(dir, logger: Logger(label: "test")))
            #expect(reason.hasPrefix("Invalid argument; fusermount3: ") && reason.contains(dir), "\(reason)")
        }
    }
}

/// Leaves a mount whose daemon is gone, as SIGKILL would: a session mounted and destroyed
/// without unmounting.
enum StaleMountMaker {
    static func leaveDeadMount(at path: String) throws {
        var ops = FuseOps.table()
        let arguments = ["kvgossip-dead", "-o", "fsname=kvgossip,subtype=kvgossip"]
        guard let se = FuseArguments.with(arguments, { fuse_session_new(&$0, &ops, MemoryLayout<fuse_lowlevel_ops>.size, nil) }) else {
            throw MountError.sessionFailed("test")
        }
        guard fuse_session_mount(se, path) == 0 else { throw MountError.mountFailed("test") }
        fuse_session_destroy(se)
    }
}


