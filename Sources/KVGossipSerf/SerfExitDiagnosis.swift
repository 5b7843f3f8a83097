/// Why a Serf agent quit, read from what it logged before exiting. Most exits are worth a restart
/// (a crash, a kill); some are not, because the cause is outside the process and a restarted
/// agent would meet it again at once.
public enum SerfExitDiagnosis: Equatable, Sendable {
    /// Another member uses this node's name; Serf's conflict resolution made this one quit.
    case nameConflict(otherAddress: String?)

    /// Recognises the exits a restart does not fix; nil for every other log.
    public init?(log: String) {
        // Serf logs "Node name conflicts with another node at ADDR. Names must be unique!" when it
        // sees the conflict, and "minority in name conflict resolution, quitting" when it loses.
        guard log.contains("minority in name conflict resolution") || log.contains("Names must be unique") else { return nil }
        var address: String?
        if let range = log.range(of: "conflicts with another node at ") {
            let rest = log[range.upperBound...]
            let end = rest.firstIndex { $0 == " " || $0 == "\n" } ?? rest.endIndex
            var text = Substring(rest[..<end])
            while text.hasSuffix(".") { text = text.dropLast() }
            address = String(text)
        }
        self = .nameConflict(otherAddress: address)
    }

    /// Whether restarting the agent can help.
    public var restartHelps: Bool {
        switch self {
        case .nameConflict: false
        }
    }

    /// One line for the log and for `kvgossip status`.
    public func message(nodeName: String) -> String {
        switch self {
        case .nameConflict(let other):
            "serf quit: another member\(other.map { " (at \($0))" } ?? "") uses this node's name \"\(nodeName)\"; "
                + "names must be unique in the cluster: give one of the hosts another --name (or leave --name unset for a name derived from the host name and node key)"
        }
    }
}
