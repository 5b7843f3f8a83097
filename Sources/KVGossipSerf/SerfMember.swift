/// A member's state as Serf reports it. Kept open (not an enum) so a status this build does not
/// know still decodes.
public struct SerfMemberStatus: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let alive = SerfMemberStatus(rawValue: "alive")
    public static let leaving = SerfMemberStatus(rawValue: "leaving")
    public static let left = SerfMemberStatus(rawValue: "left")
    public static let failed = SerfMemberStatus(rawValue: "failed")

    public var description: String { rawValue }
}

/// One entry of `members` or of a member event.
public struct SerfMember: Sendable, Equatable {
    /// Unique node name.
    public var name: String
    /// The gossip address as text (`127.0.0.1`, `fd00::1`).
    public var address: String
    /// The gossip port (not the kvg sync port, which is in `tags`).
    public var port: UInt16
    /// Tags are strings on the wire; numbers must be parsed (see `Membership.syncPort(fromTag:)`).
    public var tags: [String: String]
    public var status: SerfMemberStatus
    /// Memberlist/Serf protocol versions, kept for diagnostics.
    public var protocolMin: UInt8
    public var protocolMax: UInt8
    public var protocolCurrent: UInt8
    public var delegateMin: UInt8
    public var delegateMax: UInt8
    public var delegateCurrent: UInt8

    public init(
        name: String, address: String, port: UInt16, tags: [String: String], status: SerfMemberStatus,
        protocolMin: UInt8 = 0, protocolMax: UInt8 = 0, protocolCurrent: UInt8 = 0,
        delegateMin: UInt8 = 0, delegateMax: UInt8 = 0, delegateCurrent: UInt8 = 0
    ) {
        self.name = name
        self.address = address
        self.port = port
        self.tags = tags
        self.status = status
        self.protocolMin = protocolMin
        self.protocolMax = protocolMax
        self.protocolCurrent = protocolCurrent
        self.delegateMin = delegateMin
        self.delegateMax = delegateMax
        self.delegateCurrent = delegateCurrent
    }

    init(decoding value: MsgPackValue) throws(SerfError) {
        var g = try SerfFields(value, "Member")
        let name = try g.string("Name")
        g.context = "Member \(name)"
        self.init(
            name: name,
            address: try IPAddressText.format(try g.bytes("Addr"), context: g.context),
            port: try g.integer("Port"),
            tags: try g.stringMap("Tags"),
            status: SerfMemberStatus(rawValue: try g.string("Status")),
            protocolMin: try g.integer("ProtocolMin", default: 0),
            protocolMax: try g.integer("ProtocolMax", default: 0),
            protocolCurrent: try g.integer("ProtocolCur", default: 0),
            delegateMin: try g.integer("DelegateMin", default: 0),
            delegateMax: try g.integer("DelegateMax", default: 0),
            delegateCurrent: try g.integer("DelegateCur", default: 0)
        )
    }

    /// Decodes a `{Members: [...]}` body.
    package static func list(decoding body: MsgPackValue) throws(SerfError) -> [SerfMember] {
        var members: [SerfMember] = []
        for item in try SerfFields(body, "members reply").array("Members") {
            members.append(try SerfMember(decoding: item))
        }
        return members
    }
}
