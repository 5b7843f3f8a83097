/// The command line: one or more `--control` endpoints and the `--key` to follow; for a TCP
/// endpoint also the client's key, its grants and the cluster's root, which every value is
/// verified against (Docs/client.md §Endpoints and failover, §Verification).
struct WatcherArguments {
    var endpoints: [String] = []
    var key = ""
    var controlKey: String?
    var controlGrants: [String] = []
    var root: String?

    static let usage = """
        usage: ConfigWatcherExample --control PATH|HOST:PORT [--control …] --key KEY
                                    [--control-key FILE --control-grant FILE… --root PUBKEY]   (for HOST:PORT)
        """

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
            case "--control-key": parsed.controlKey = value
            case "--control-grant": parsed.controlGrants.append(value)
            case "--root": parsed.root = value
            default: throw Problem(description: "unknown option \(flag)")
            }
        }
        if parsed.endpoints.isEmpty { throw Problem(description: "give at least one --control") }
        if parsed.key.isEmpty { throw Problem(description: "give --key") }
        return parsed
    }
}
