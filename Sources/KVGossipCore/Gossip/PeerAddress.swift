/// Where a peer serves sync: `HOST:PORT`. An address is a hint of where to dial; who answers there
/// is decided by the link handshake.
public struct PeerAddress: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let host: String
    public let port: Int

    public init(host: String, port: Int) {
        // An IPv4 peer reaching a dual-stack listener shows as ::ffff:a.b.c.d: the same host.
        self.host = host.hasPrefix("::ffff:") && host.contains(".") ? String(host.dropFirst(7)) : host
        self.port = port
    }

    /// `HOST:PORT`, IPv6 hosts in brackets.
    public init?(parsing text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self.init(host: host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    public static func < (a: PeerAddress, b: PeerAddress) -> Bool { a.description < b.description }
}
