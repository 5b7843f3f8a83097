import Foundation
import KVGossipCore
import KVGossipNode
import KVGossipStore
import Logging
import Testing
@testable import KVGossipMount

/// The truth index and the follower's step planning, on a state with no kernel attached.
@Suite struct ReplayPlanTests {
    static func record(_ key: String, _ value: String?, at ms: UInt64 = 1_795_737_600_000) -> Record {
        Record(
            cluster: Keys.root.publicKey, key: try! Key(key), kind: value == nil ? .tombstone : .value,
            value: Array((value ?? "").utf8), timestamp: HLC(physicalMs: ms), signer: Keys.root, pool: [])
    }

    /// A state over an unused node: planning never touches it.
    static func state() throws -> FSState {
        let dir = "/tmp/kvg-mount-tests/plan-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let store = try Store(directory: dir, root: Keys.root.publicKey)
        let node = try Node(store: store, key: Keys.root)
        // Planning never reads the store again; the open files outlive their directory.
        try? FileManager.default.removeItem(atPath: dir)
        let ctx = MountContext(
            node: node, scratch: ScratchNames(patterns: MountOptions.defaultScratchPatterns), uid: 0, gid: 0,
            logger: Logger(label: "plan"), values: ValueCache(budgetBytes: 1 << 20))
        return FSState(ctx: ctx)
    }

    /// Applies the planned steps the way the follower's own requests would change the view.
    static func replay(_ path: String, in st: inout FSState) -> [SelfOp] {
        var ops: [SelfOp] = []
        while let op = st.nextOp(for: path), ops.count < 50 {
            ops.append(op)
            let now: UInt64 = 1
            switch op {
            case .mkdir(let p): st.view.insert(p, .directory(local: false, mtimeMs: now), nowMs: now)
            case .rmdir(let p), .unlink(let p): st.view.remove(p, nowMs: now)
            case .create(let p): st.view.insert(p, .key(st.truth.liveEntry(p), mtimeMs: now), nowMs: now)
            case .write(let p): st.view.update(p) { $0.shown = st.truth.liveEntry(p) }
            }
        }
        return ops
    }

    @Test func truthIgnoresOlderVersionsAndScratchKeys() throws {
        var st = try Self.state()
        let newer = st.truth.apply(Self.record("/a/b", "2", at: 2_000))
        let older = st.truth.apply(Self.record("/a/b", "1", at: 1_000))
        let scratch = st.truth.apply(Self.record("/a/4913", "x"))
        #expect(newer && !older && !scratch)
        #expect(st.truth.hasDescendants("/a") && st.truth.childNames("/") == ["a"])
        let tombstone = st.truth.apply(Self.record("/a/b", nil, at: 3_000))
        #expect(tombstone)
        #expect(!st.truth.hasDescendants("/a") && st.truth.childNames("/").isEmpty)
    }

    @Test func aNewKeyInNewDirectoriesIsCreatedTopDown() throws {
        var st = try Self.state()
        st.truth.apply(Self.record("/x/y/z", "v"))
        #expect(Self.replay("/x/y/z", in: &st) == [.mkdir("/x"), .mkdir("/x/y"), .create("/x/y/z")])
        st.truth.apply(Self.record("/x/y/z", "w", at: 1_795_737_700_000))
        #expect(Self.replay("/x/y/z", in: &st) == [.write("/x/y/z")])
        st.truth.apply(Self.record("/x/y/z", nil, at: 1_795_737_800_000))
        #expect(Self.replay("/x/y/z", in: &st) == [.unlink("/x/y/z"), .rmdir("/x/y"), .rmdir("/x")])
    }

    @Test func theDirectoryWinsAndTheShadowedValueComesBack() throws {
        var st = try Self.state()
        st.truth.apply(Self.record("/a", "file"))
        #expect(Self.replay("/a", in: &st) == [.create("/a")])
        st.truth.apply(Self.record("/a/b", "inner"))
        #expect(Self.replay("/a/b", in: &st) == [.unlink("/a"), .mkdir("/a"), .create("/a/b")])
        st.truth.apply(Self.record("/a/b", nil, at: 1_795_737_700_000))
        #expect(Self.replay("/a/b", in: &st) == [.unlink("/a/b"), .rmdir("/a"), .create("/a")])
    }

    @Test func localWorkIsLeftAlone() throws {
        var st = try Self.state()
        // A directory made by the user stays when the network's last key below it goes.
        st.view.insert("/mine", .directory(local: true, mtimeMs: 1), nowMs: 1)
        st.truth.apply(Self.record("/mine/k", "v"))
        #expect(Self.replay("/mine/k", in: &st) == [.create("/mine/k")])
        st.view.clearLocal(above: "/mine/k")
        st.view.update("/mine") { $0.local = true }
        st.truth.apply(Self.record("/mine/k", nil, at: 1_795_737_700_000))
        #expect(Self.replay("/mine/k", in: &st) == [.unlink("/mine/k")])
        // A file being created here is not overwritten by a delivery.
        st.view.insert("/mine/new", .key(nil, mtimeMs: 1), nowMs: 1)
        st.truth.apply(Self.record("/mine/new", "remote"))
        #expect(Self.replay("/mine/new", in: &st).isEmpty)
        // A key hidden by a rename onto a scratch name is not shown again.
        st.truth.apply(Self.record("/h", "v"))
        st.hidden["/h"] = HiddenKey(holder: "/h~", deadlineMs: .max)
        #expect(Self.replay("/h", in: &st).isEmpty)
    }
}
