import Synchronization

/// Which control connections may be served now: at most `limits.connections` per transport and,
/// on TCP, `limits.connectionsPerAddress` from one source address. A refused connection is told
/// why (`busy`) and closed.
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
