import KVGossipCore

/// What `kvgossip --version` prints and the agent logs at start. The sync protocol version is the
/// one that decides whether two agents can talk (Docs/protocol.md); upgrades keep it or say so.
enum KVGossipVersion {
    static let release = "0.1.0"
    static var text: String { "kvgossip \(release) (sync protocol \(LinkHandshake.protocolVersion))" }
}
