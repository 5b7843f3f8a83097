/// The command line: one or more `--control` endpoints, the `--key` to follow, and the cluster's
/// `--root` (needed with a HOST:PORT endpoint: the client verifies every value against it).
struct WatcherArguments {
    var endpoints: [String] = []
    var key = ""
    var root: String?

    static let usage = "usage: ConfigWatcherExample --control PATH|HOST:PORT [--control …] --key KEY [--root PUBKEY]"

    struct Problem: Error, CustomStringConvertible {
        let description: String
    }

    static func parse(_ args: [String]) throws -> WatcherArguments {
        var parsed = WatcherArguments()
        var rest = args[...]
        while let flag = rest.popFirst() {
            guard let value = rest.popFirst() else { throw Problem(description: "\(flag) needs a value") }
            switch flag {
            case "--control": parsed.endpoints.append(value)
            case "--key": parsed.key = value
            case "--root": parsed.root = value
            default: throw Problem(description: "unknown option \(flag)")
            }
        }
        if parsed.endpoints.isEmpty { throw Problem(description: "give at least one --control") }
        if parsed.key.isEmpty { throw Problem(description: "give --key") }
        return parsed
    }
}
