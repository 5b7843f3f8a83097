/// Where a control endpoint lives: a Unix socket path or `host:port`.
public enum ControlEndpoint: Sendable, Equatable, CustomStringConvertible {
    case unix(String)
    case tcp(host: String, port: Int)

    /// `host:port` (with a numeric port) is TCP; anything else is a socket path.
    public init(parsing text: String) {
        if !text.contains("/"), let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) {
            self = .tcp(host: String(text[..<colon]), port: port)
        } else {
            self = .unix(text)
        }
    }

    public var description: String {
        switch self {
        case .unix(let path): path
        case .tcp(let host, let port): "\(host):\(port)"
        }
    }

    public static let defaultSocketPath = "/run/kvgossip/control.sock"
}
