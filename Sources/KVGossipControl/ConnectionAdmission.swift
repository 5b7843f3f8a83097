import KVGossipCore
import Synchronization

/// Which control connections may be served now: at most `limits.connections` per transport and,
/// on TCP, `limits.connectionsPerAddress` from one source address. A refused connection is told
/// why (`busy`) and closed. TCP connections are counted only once their client is admitted.
struct ConnectionCounts: Equatable {
    private(set) var open: [ControlHandler.Transport: Int] = [:]
    private(set) var byAddress: [String: Int] = [:]

    /// Counts the connection in, or returns the sentence it is refused with.
    mutating func admit(_ transport: ControlHandler.Transport, address: String?, limits: ControlLimits) -> String? {
        guard open[transport, default: 0] < limits.connections else {
            return "this agent already serves \(limits.connections) control connections on its \(transport.name); try later"
        }
        if let address {
            guard byAddress[address, default: 0] < limits.connectionsPerAddress else {
                return "this agent already serves \(limits.connectionsPerAddress) control connections from \(address); close some first"
            }
            byAddress[address, default: 0] += 1
        }
        open[transport, default: 0] += 1
        return nil
    }

    mutating func release(_ transport: ControlHandler.Transport, address: String?) {
        open[transport, default: 1] -= 1
        if let address {
            byAddress[address, default: 1] -= 1
            if byAddress[address] == 0 { byAddress.removeValue(forKey: address) }
        }
    }
}

extension ControlHandler.Transport {
    var name: String {
        switch self {
        case .local: "Unix socket"
        case .remote: "TCP listener"
        }
    }
}

/// The admitted TCP clients connected now, each with how to let it go when a revocation takes its
/// credential.
struct RemoteClients: Sendable {
    typealias Drop = @Sendable (Refusal) -> Void
    private var clients: [UInt64: (identity: LinkIdentity, drop: Drop)] = [:]
    private var next: UInt64 = 0

    mutating func add(_ identity: LinkIdentity, drop: @escaping Drop) -> UInt64 {
        next += 1
        clients[next] = (identity, drop)
        return next
    }

    mutating func remove(_ number: UInt64) { clients[number] = nil }

    var all: [(identity: LinkIdentity, drop: Drop)] { Array(clients.values) }
}

/// What the TCP listener makes of a connection's first frame. A JSON request (`{` after optional
/// white space; a handshake starts with its tag, `kvgossip/…`) comes from a client that does not
/// authenticate, such as one built before the listener required it: it is refused in the one
/// language it reads, a control answer, rather than in a handshake frame it cannot parse.
enum FirstFrame {
    static func isPlainRequest(_ frame: [UInt8]) -> Bool {
        frame.first { ![0x20, 0x09, 0x0A, 0x0D].contains($0) } == UInt8(ascii: "{")
    }

    static let plainRequestRefusal = Refusal(
        .noAuthority,
        "this TCP control listener serves only clients that authenticate (Docs/protocol.md §Control over TCP): "
            + "connect with a client key, its grants and the cluster's root (kvgossip --control-key, --control-grant, --root)")
}
