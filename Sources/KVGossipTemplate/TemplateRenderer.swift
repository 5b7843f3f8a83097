import Foundation
import Stencil

/// One template: a name for messages (its file) and its text.
public struct TemplateSource: Sendable, Equatable {
    public let name: String
    public let text: String

    public init(name: String, text: String) {
        self.name = name
        self.text = text
    }
}

/// What rendering a template set against one snapshot gave.
public enum RenderOutcome: Sendable, Equatable {
    /// The templates read something the snapshot does not cover (`reads.uncovered`): fetch a
    /// snapshot that does and render again. Nothing of this render may be used.
    case incomplete(TemplateReads)
    /// At least one template cannot be rendered from this snapshot: a required key is missing, a
    /// helper refused a value, or the template is wrong. One message per problem.
    case failed([String], TemplateReads)
    /// Every template rendered, in the order given.
    case rendered([Data], TemplateReads)

    public var reads: TemplateReads {
        switch self {
        case .incomplete(let r), .failed(_, let r), .rendered(_, let r): r
        }
    }
}

/// Renders a set of Stencil templates from one snapshot, all or nothing (Docs/templates.md §Helpers).
public struct TemplateRenderer: Sendable {
    /// The largest output a template may produce.
    public static let maxOutputBytes = 16 << 20
    /// The most keys and patterns a template set may read; beyond it the set is refused rather
    /// than having the agent answer ever larger selections.
    public static let maxDependencies = 512

    public let sources: [TemplateSource]

    /// Refuses templates that use `.last`: Stencil 0.15.1 traps on `.last` of an empty list or
    /// text, and a value can always be empty. The `last` filter is the safe spelling.
    public init(_ sources: [TemplateSource]) throws(TemplateConfigError) {
        for source in sources {
            if let line = Self.lineUsingDotLast(source.text) {
                throw TemplateConfigError("\(source.name):\(line): `.last` stops the renderer when the list or text is empty; write `|last` instead")
            }
        }
        self.sources = sources
    }

    public func render(_ snapshot: Snapshot) -> RenderOutcome {
        var outputs: [Data] = []
        var problems: [String] = []
        var reads = TemplateReads()
        for source in sources {
            let reader = TreeReader(snapshot: snapshot)
            let environment = Environment(extensions: [reader.helpers()])
            let template = Template(templateString: source.text, environment: environment, name: source.name)
            do {
                let output = Data(try template.render([:]).utf8)
                if output.count > Self.maxOutputBytes {
                    problems.append("\(source.name): the output is \(output.count) bytes, more than the limit of \(Self.maxOutputBytes)")
                }
                outputs.append(output)
            } catch {
                problems.append(Self.describe(error, in: source))
            }
            reads.merge(reader.reads)
            if !reader.reads.missing.isEmpty {
                problems.append("\(source.name): no value for \(reader.reads.missing.joined(separator: ", ")) and no default")
            }
        }
        // With something uncovered, errors may come from placeholders: only the refetch is certain.
        if !reads.uncovered.isEmpty, reads.patterns.count <= Self.maxDependencies { return .incomplete(reads) }
        if reads.patterns.count > Self.maxDependencies {
            problems.append("the templates read \(reads.patterns.count) keys and patterns, more than the limit of \(Self.maxDependencies)")
        }
        return problems.isEmpty ? .rendered(outputs, reads) : .failed(problems, reads)
    }

    /// `name:line:column: reason` and the offending line, as far as Stencil says where.
    static func describe(_ error: any Error, in source: TemplateSource) -> String {
        guard let error = error as? TemplateSyntaxError else { return "\(source.name): \(error)" }
        guard let token = error.token else { return "\(source.name): \(error.reason)" }
        let at = token.sourceMap.location
        let line = at.content.trimmingCharacters(in: .whitespaces)
        return "\(source.name):\(at.lineNumber):\(at.lineOffset + 1): \(error.reason)" + (line.isEmpty ? "" : " (in: \(line.prefix(120)))")
    }

    /// The 1-based line of the first `.last` inside a `{{ }}` or `{% %}` tag, if any.
    static func lineUsingDotLast(_ text: String) -> Int? {
        let tag = /\{\{.*?\}\}|\{%.*?%\}/.dotMatchesNewlines()
        for match in text.matches(of: tag) where match.output.contains(/\.last\b/) {
            return text[..<match.range.lowerBound].reduce(1) { $1 == "\n" ? $0 + 1 : $0 }
        }
        return nil
    }
}
