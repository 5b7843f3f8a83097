import Stencil

/// `{% with EXPRESSION as NAME %}…{% endwith %}`: names a value for a block. Stencil 0.15.1 has no
/// way to read a field of a filter's result (`("/app/cfg"|key|json).port` is not its syntax);
/// naming the result first makes `cfg.port` readable.
final class WithNode: NodeType {
    let name: String
    let value: any Resolvable
    let nodes: [any NodeType]
    let token: Token?

    init(name: String, value: any Resolvable, nodes: [any NodeType], token: Token) {
        self.name = name
        self.value = value
        self.nodes = nodes
        self.token = token
    }

    static func parse(_ parser: TokenParser, _ token: Token) throws -> any NodeType {
        let parts = token.components
        guard parts.count >= 4, parts[parts.count - 2] == "as" else {
            throw TemplateSyntaxError("'with' is written {% with EXPRESSION as NAME %}…{% endwith %}")
        }
        let value = try parser.compileFilter(parts[1..<(parts.count - 2)].joined(separator: " "), containedIn: token)
        let nodes = try parser.parse(until(["endwith"]))
        guard parser.nextToken() != nil else { throw TemplateSyntaxError("'with' has no matching {% endwith %}") }
        return WithNode(name: parts[parts.count - 1], value: value, nodes: nodes, token: token)
    }

    func render(_ context: Context) throws -> String {
        let resolved = try value.resolve(context)
        return try context.push(dictionary: [name: resolved as Any]) { try renderNodes(nodes, context) }
    }
}
