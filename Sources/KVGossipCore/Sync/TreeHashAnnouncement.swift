/// The payload of the `kvgossip-hash` Serf query and of its answers (Docs/contract.md §Serf): who is asking or
/// answering, for which cluster, with which tree hash, and where to sync with it. About 90 bytes,
/// far under Serf's ~800-byte query budget.
public struct TreeHashAnnouncement: Sendable, Equatable {
    public static let queryName = "kvgossip-hash"
    static let magic = Array("KVH1".utf8)
    public static let maxNodeNameBytes = 128

    public var cluster: PublicKey
    public var treeHash: Hash256
    public var syncPort: UInt16
    public var nodeName: String

    public init(cluster: PublicKey, treeHash: Hash256, syncPort: UInt16, nodeName: String) {
        self.cluster = cluster
        self.treeHash = treeHash
        self.syncPort = syncPort
        self.nodeName = nodeName
    }

    public var encoded: [UInt8] {
        var w = ByteWriter(capacity: 100)
        w.fixed(TreeHashAnnouncement.magic)
        w.fixed(cluster.bytes)
        w.fixed(treeHash.bytes)
        w.u16(syncPort)
        w.shortText(nodeName, maxBytes: TreeHashAnnouncement.maxNodeNameBytes)
        return w.bytes
    }

    public init(decoding bytes: [UInt8]) throws(Refusal) {
        var r = ByteReader(bytes)
        guard try r.fixed(4, "magic") == TreeHashAnnouncement.magic else { throw Refusal(.malformed, "not a kvgossip tree-hash announcement") }
        cluster = try r.publicKey("cluster")
        treeHash = try r.hash("tree hash")
        syncPort = try r.u16("sync port")
        guard let name = String(validating: try r.short("node name", max: TreeHashAnnouncement.maxNodeNameBytes), as: UTF8.self) else {
            throw Refusal(.malformed, "node name is not UTF-8")
        }
        nodeName = name
        try r.expectEnd("announcement")
    }
}
