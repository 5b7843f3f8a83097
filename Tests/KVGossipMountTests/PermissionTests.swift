import Foundation
import KVGossipMount
import Testing

extension MountTests {
    /// Who may change the tree through the mount. The handlers do not ask who is calling: every
    /// save is signed with the node's key, so the kernel's check of the mode bits
    /// (`default_permissions`, always on) is the only thing that keeps other users of the host from
    /// writing with the node's authority (Docs/operations.md §The configuration file, `mountUID`).
    @Suite struct PermissionTests {
        /// `sh -c script` as the user and group 65534 (nobody), with no supplementary groups.
        static func asNobody(_ fx: MountFixture, _ script: String) -> ShellResult {
            fx.sh("setpriv --reuid=65534 --regid=65534 --clear-groups sh -c '\(script)'")
        }

        @Test func anotherUserReadsButCannotChangeTheTree() throws {
            try withMount(seed: ["/app/k": "v"]) { fx throws in
                let read = Self.asNobody(fx, "cat app/k")
                #expect(read.ok && read.stdout == "v", "\(read)")
                for change in ["echo x > app/k", "echo x > app/new", "mkdir app/d", "rm app/k", "mv app/k app/k2", "truncate -s 0 app/k"] {
                    let attempt = Self.asNobody(fx, change)
                    #expect(!attempt.ok && attempt.stderr.contains("Permission denied"), "\(change): \(attempt)")
                }
                #expect(try fx.values() == ["/app/k": "v"], "a refused change reached the store")
                #expect(try fx.tombstones().isEmpty)
            }
        }

        @Test func theOwnerGivenByMountUIDMayWrite() throws {
            var options = MountOptions()
            options.uid = 65534
            options.gid = 65534
            try withMount(seed: ["/app/k": "v"], options: options) { fx throws in
                let write = Self.asNobody(fx, "echo y > app/k && echo n > app/new")
                #expect(write.ok, "\(write)")
                #expect(try fx.values() == ["/app/k": "y\n", "/app/new": "n\n"])
                let root = fx.sh("stat -c %u:%g app/k")
                #expect(root.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "65534:65534", "\(root)")
            }
        }
    }
}
