/// A KVGossip peer found through Serf: an alive member announcing its sync port in the `kvg` tag.
public struct SerfPeer: Sendable, Hashable, CustomStringConvertible {
    /// The Serf node name.
    public var name: String
    /// The member's gossip address; the sync service listens on the same host.
    public var address: String
    /// Where the peer's KVGossip sync service listens (from its tag).
    public var syncPort: Int

    public init(name: String, address: String, syncPort: Int) {
        self.name = name
        self.address = address
        self.syncPort = syncPort
    }

    public var description: String {
        address.contains(":") ? "\(name)@[\(address)]:\(syncPort)" : "\(name)@\(address):\(syncPort)"
    }
}

/// The cluster as this node sees it: the last known state of every member, kept current from a
/// `members` snapshot plus member events, and the peers derived from it.
///
/// Events are applied by member name using the state they carry, never by event kind alone, because
/// the agent coalesces and repeats them (a leave can arrive next to a stale `member-update`).
public struct Membership: Sendable {
    /// The tag that carries the sync port.
    public static let defaultTag = "kvg"

    /// This node's Serf name; never listed as a peer.
    public let selfName: String
    /// The tag holding the sync port.
    public let tagName: String
    /// Every member by name, in its last reported state (left and failed ones included).
    public private(set) var members: [String: SerfMember] = [:]

    public init(selfName: String, tagName: String = Membership.defaultTag) {
        self.selfName = selfName
        self.tagName = tagName
    }

    /// Replaces everything with a fresh `members` answer (after connecting or reconnecting).
    public mutating func replaceAll(with members: [SerfMember]) {
        self.members = Dictionary(members.map { ($0.name, $0) }, uniquingKeysWith: { _, last in last })
    }

    /// Applies one member event. Returns whether the peer list changed.
    @discardableResult
    public mutating func apply(_ event: SerfMemberEvent) -> Bool {
        let before = peers
        for member in event.members {
            if event.kind == .reap { members[member.name] = nil } else { members[member.name] = member }
        }
        return peers != before
    }

    /// Alive members with a valid sync-port tag, other than this node, sorted by name.
    public var peers: [SerfPeer] {
        Self.peers(in: Array(members.values), selfName: selfName, tagName: tagName)
    }

    /// The peers among `members`.
    public static func peers(in members: [SerfMember], selfName: String, tagName: String = defaultTag) -> [SerfPeer] {
        members.compactMap { member -> SerfPeer? in
            guard member.name != selfName, member.status == .alive,
                let tag = member.tags[tagName], let port = syncPort(fromTag: tag)
            else { return nil }
            return SerfPeer(name: member.name, address: member.address, syncPort: port)
        }
        .sorted { $0.name < $1.name }
    }

    /// A port written as plain decimal, 1...65535. Anything else (signs, spaces, `0x`) is not a
    /// KVGossip tag and the member is ignored rather than guessed at.
    public static func syncPort(fromTag text: String) -> Int? {
        guard !text.isEmpty, text.count <= 5, text.utf8.allSatisfy({ (0x30 ... 0x39).contains($0) }),
            let port = Int(text), (1 ... 65535).contains(port)
        else { return nil }
        return port
    }
}
