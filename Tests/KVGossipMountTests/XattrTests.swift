import Foundation
import KVGossipCore
import KVGossipMount
import KVGossipNode
import Testing

extension MountTests {
    @Suite struct XattrTests {
        @Test func getfattrShowsSignerChainAndState() throws {
            let grant = Keys.grant(to: Keys.alice, ["/app/**"])
            try withMount(nodeKey: Keys.alice, grants: [grant], seed: ["/top": "t"]) { fx throws in
                #expect(fx.sh("mkdir -p app && echo v > app/k").ok)
                let record = try #require(try fx.store.record(Key("/app/k")))
                let dump = fx.sh("getfattr -d -m user.kvgossip app/k")
                #expect(dump.ok, "\(dump)")
                #expect(dump.stdout.contains("user.kvgossip.signer=\"\(Keys.alice.publicKey.text)\""))
                #expect(dump.stdout.contains("user.kvgossip.chain=\"\(grant.chainLine)\""), "\(dump.stdout)")
                #expect(dump.stdout.contains("user.kvgossip.digest=\"\(record.digest.hex)\""))
                #expect(dump.stdout.contains("user.kvgossip.timestamp=\"\(record.timestamp.rfc3339) \(record.timestamp.raw)\""))
                #expect(dump.stdout.contains("user.kvgossip.dirty=\"0\""))
                #expect(dump.stdout.contains("user.kvgossip.state=\"synced\""))
                #expect(dump.stdout.contains("user.kvgossip.writable=\"1\""))

                fx.node.attach(keyStates: FixedKeyStates(states: [try Key("/app/k"): .pendingPush]))
                #expect(fx.sh("getfattr --only-values -n user.kvgossip.state app/k").stdout == "pending-push")
                #expect(fx.sh("getfattr --only-values -n user.kvgossip.dirty app/k").stdout == "1")
                #expect(fx.sh("getfattr --only-values -n user.kvgossip.chain top").stdout == "root")

                let root = fx.sh("getfattr -d -m user.kvgossip .")
                #expect(root.stdout.contains("user.kvgossip.treehash=\"\(fx.store.treeHash.hex)\""), "\(root)")
                #expect(root.stdout.contains("user.kvgossip.peers="))
            }
        }

        @Test func attributesAreReadOnlyAndOthersAreAbsent() throws {
            try withMount(seed: ["/k": "v"]) { fx throws in
                let set = fx.sh("setfattr -n user.kvgossip.signer -v x k")
                #expect(!set.ok && set.stderr.contains("Operation not permitted"), "\(set)")
                let remove = fx.sh("setfattr -x user.kvgossip.digest k")
                #expect(!remove.ok && remove.stderr.contains("Operation not permitted"), "\(remove)")
                let missing = fx.sh("getfattr -n user.other k")
                #expect(!missing.ok && missing.stderr.contains("No such attribute"), "\(missing)")
                let other = fx.sh("setfattr -n user.color -v blue k")
                #expect(!other.ok && other.stderr.contains("Operation not supported"), "\(other)")
                // Still answered after those refusals (ENOSYS would have switched xattrs off).
                #expect(fx.sh("getfattr --only-values -n user.kvgossip.writable k").stdout == "1")
                let list = fx.sh("python3 -c \"import os; print(sorted(os.listxattr('k')))\"").stdout
                #expect(list.contains("'user.kvgossip.chain'") && list.contains("'user.kvgossip.writable'"))
            }
        }

        @Test func rootListsItsPeers() throws {
            var options = MountOptions()
            options.peers = { ["10.0.0.2:7946", "10.0.0.3:7946"] }
            try withMount(options: options) { fx throws in
                #expect(fx.sh("getfattr --only-values -n user.kvgossip.peers .").stdout == "10.0.0.2:7946\n10.0.0.3:7946")
            }
        }
    }
}

/// Key states set by hand, for checks of how the mount shows them.
struct FixedKeyStates: KeyStateSource {
    var states: [Key: KeyState]
    var defaultKeyState: KeyState = .synced
    func keyState(of key: Key) -> KeyState { states[key] ?? defaultKeyState }
    func dirtyCounts(liveKeys: Int) -> [KeyState: Int] { [:] }
}
