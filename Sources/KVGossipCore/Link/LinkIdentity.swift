/// Who a node says it is on a link: its node key, the name it goes by, where it serves sync, and
/// its credential — the grants that chain its node key to the root (Docs/contract.md §Admission).
public struct LinkIdentity: Sendable, Equatable {
    public static let maxNameBytes = 255
    public static let maxCredentialGrants = 8
    /// The largest encoded grant a credential may hold.
    public static let maxGrantBytes = 64 * 1024
    /// The largest identity on the wire: key, instance, the longest name, port, and the most
    /// grants of the largest size, each with its length.
    public static let maxEncodedBytes = 32 + instanceBytes + 2 + maxNameBytes + 2 + 1 + maxCredentialGrants * (4 + maxGrantBytes)

    public let nodeKey: PublicKey
    public let name: String
    public let syncPort: UInt16
    public let credential: [Grant]
    /// Random per running agent: two processes may share a node key (tests do), but a link from a
    /// process to itself (a peer address that points back here) must be recognised.
    public let instance: [UInt8]
    public static let instanceBytes = 16

    public init(nodeKey: PublicKey, name: String, syncPort: UInt16, credential: [Grant], instance: [UInt8]) {
        precondition(instance.count == LinkIdentity.instanceBytes, "an instance id is 16 bytes")
        self.instance = instance
        self.nodeKey = nodeKey
        self.name = name.utf8Prefix(maxBytes: LinkIdentity.maxNameBytes)
        self.syncPort = syncPort
        self.credential = Array(credential.prefix(LinkIdentity.maxCredentialGrants))
    }

    package func write(to w: inout ByteWriter) {
        w.fixed(nodeKey.bytes)
        w.fixed(instance)
        w.short(Array(name.utf8))
        w.u16(syncPort)
        w.u8(UInt8(credential.count))
        for g in credential { w.long(g.encoded) }
    }

    package static func read(from r: inout ByteReader, limits: Limits) throws(Refusal) -> LinkIdentity {
        let nodeKey = try r.publicKey("node key")
        let instance = try r.fixed(instanceBytes, "instance id")
        let rawName = try r.short("node name", max: maxNameBytes)
        guard let name = String(validating: rawName, as: UTF8.self) else { throw Refusal(.malformed, "node name is not UTF-8") }
        let syncPort = try r.u16("sync port")
        let count = Int(try r.u8("credential length"))
        guard count <= maxCredentialGrants else { throw Refusal(.tooLarge, "a credential holds at most \(maxCredentialGrants) grants, not \(count)") }
        var credential: [Grant] = []
        for _ in 0..<count { credential.append(try Grant(decoding: try r.long("credential grant", max: maxGrantBytes), limits: limits, checkingPatterns: false)) }
        return LinkIdentity(nodeKey: nodeKey, name: name, syncPort: syncPort, credential: credential, instance: instance)
    }
}

/// A node's own side of links: its identity and the key that signs its handshakes.
public struct LinkCredentials: Sendable {
    public let identity: LinkIdentity
    public let signingKey: SigningKey

    public init(signingKey: SigningKey, name: String, syncPort: UInt16, credential: [Grant], instance: [UInt8]) {
        self.signingKey = signingKey
        identity = LinkIdentity(nodeKey: signingKey.publicKey, name: name, syncPort: syncPort, credential: credential, instance: instance)
    }
}

/// Which keys the cluster admits as peers (Docs/contract.md §Admission): the root, and any key
/// holding a chain of grants from the root that is in force now and not revoked. Patterns do not
/// matter: a grant with no pattern at all (`kvgossip grant --member`) admits a host that only reads.
public enum Admission {
    /// Nil when `identity` is admitted; otherwise why not.
    public static func refusal(
        of identity: LinkIdentity, search: ChainSearch, nowMs: UInt64, isRevoked: (Hash256) -> Bool
    ) -> Refusal? {
        if search.membership(of: identity.nodeKey, atMs: nowMs, pool: identity.credential, isRevoked: isRevoked) != nil { return nil }
        if search.membership(of: identity.nodeKey, atMs: nowMs, pool: identity.credential, isRevoked: { _ in false }) != nil {
            return Refusal(.revoked, "the credential of \(identity.nodeKey.fingerprint) (\(identity.name)) is revoked")
        }
        if search.membership(of: identity.nodeKey, atMs: nil, pool: identity.credential, isRevoked: { _ in false }) != nil {
            return Refusal(.expired, "the credential of \(identity.nodeKey.fingerprint) (\(identity.name)) is not in force now")
        }
        return Refusal(.noAuthority, "the cluster does not recognise the node key \(identity.nodeKey.fingerprint) (\(identity.name)): no chain of grants from the root to it")
    }

    /// Where `identity` stands under the root, for `LinkEviction`: the ids of the grants of the
    /// chain that admits it now, root side first, then its node key (only the node key for the
    /// root, or when no chain admits it).
    public static func lineage(
        of identity: LinkIdentity, search: ChainSearch, nowMs: UInt64, isRevoked: (Hash256) -> Bool
    ) -> [Hash256] {
        let chain = search.membership(of: identity.nodeKey, atMs: nowMs, pool: identity.credential, isRevoked: isRevoked) ?? []
        return chain.map(\.id) + [Hash256.of(identity.nodeKey.bytes)]
    }
}
