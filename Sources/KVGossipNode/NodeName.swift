import KVGossipCore

/// The name a node goes by in Serf, in logs and to its peers.
public enum NodeName {
    /// The default: the host name and the first 8 hex digits of the node key's fingerprint, so hosts
    /// cloned from one image (same host name, keys generated on first start) still get distinct
    /// names, and the name stays the same across restarts.
    public static func derived(hostName: String, nodeKey: PublicKey) -> String {
        let host = hostName.isEmpty ? "host" : hostName
        return "\(host)-\(nodeKey.fingerprint.prefix(8))"
    }
}
