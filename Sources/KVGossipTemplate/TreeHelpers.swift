import Foundation
import KVGossipClient
import KVGossipCore
import Stencil

/// The filters templates read the tree with (Docs/templates.md §Helpers), answering from one
/// snapshot and noting every read in a ``TemplateReads``.
///
/// A lookup the snapshot cannot answer returns a placeholder (empty text, an empty list, false)
/// and is noted as uncovered: that render is thrown away and made again once a snapshot covers it.
/// Values are data, never template text: nothing a key holds is parsed as a template.
final class TreeReader {
    let snapshot: Snapshot
    private(set) var reads = TemplateReads()

    init(snapshot: Snapshot) {
        self.snapshot = snapshot
    }

    /// The filters, bound to this reader.
    func helpers() -> Extension {
        let helpers = Extension()
        helpers.registerFilter("key") { value, arguments in
            try self.text(of: try self.lookup(value, "key"), default: try Self.fallback(arguments, "key"), value)
        }
        helpers.registerFilter("exists") { value in
            try self.lookup(value, "exists").map { _ in true } ?? false
        }
        helpers.registerFilter("signer") { value, arguments in
            let fallback = try Self.fallback(arguments, "signer")
            guard let record = try self.lookup(value, "signer") else { return self.absent(value, fallback) }
            return record.signer
        }
        helpers.registerFilter("under") { value in
            let prefix = try Self.key(value, "under")
            return try self.entries(Pattern(prefix.path == "/" ? "/**" : prefix.path + "/**"), below: prefix.path)
        }
        helpers.registerFilter("match") { value in
            guard let text = value as? String, let pattern = try? Pattern(text) else {
                throw TemplateSyntaxError("'match' expects a pattern such as \"/svc/*/addr\", got \(Self.show(value))")
            }
            return self.entries(pattern, below: nil)
        }
        helpers.registerFilter("trim") { value in
            if let list = value as? [Any] { return list.map { Self.string($0).trimmingCharacters(in: .whitespacesAndNewlines) } }
            return Self.string(value).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        helpers.registerFilter("lines") { value in
            Self.string(value).split(whereSeparator: \.isNewline).map(String.init)
                .filter { !$0.allSatisfy(\.isWhitespace) }
        }
        helpers.registerFilter("json") { value in
            let text = Self.string(value)
            guard !text.isEmpty else { return nil }
            do {
                return try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
            } catch {
                throw TemplateSyntaxError("'json' cannot decode \(Self.show(text)): not valid JSON")
            }
        }
        // Safe forms of Stencil's `.first`/`.last`, which trap on an empty list or text.
        helpers.registerFilter("first") { value in (value as? [Any])?.first ?? (value as? String)?.first.map(String.init) }
        helpers.registerFilter("last") { value in (value as? [Any])?.last ?? (value as? String)?.last.map(String.init) }
        helpers.registerTag("with", parser: WithNode.parse)
        return helpers
    }

    // MARK: Reads

    /// The record of the key named by `value`; nil when the key holds no value, or when the
    /// snapshot does not cover it (noted as uncovered).
    private func lookup(_ value: Any?, _ filter: String) throws -> KeyRecord? {
        let key = try Self.key(value, filter)
        reads.keys.insert(key.path)
        guard snapshot.covers(key: key) else {
            if let literal = try? Pattern(key.path) { reads.uncovered.insert(literal) }
            return nil
        }
        return snapshot.record(key.path)
    }

    /// A value's text, the default when there is none, or a noted miss.
    private func text(of record: KeyRecord?, default fallback: String?, _ value: Any?) throws -> String {
        guard let record else { return absent(value, fallback) }
        guard let text = record.string else { throw TemplateSyntaxError("the value of \(record.key) is not UTF-8 text") }
        return text
    }

    /// What an absent key reads as: its default, or empty text and a noted miss (unless the key is
    /// merely not fetched yet, which is no miss).
    private func absent(_ value: Any?, _ fallback: String?) -> String {
        if let fallback { return fallback }
        if let key = (value as? String).flatMap({ try? Key($0) }), snapshot.covers(key: key) { reads.noteMissing(key.path) }
        return ""
    }

    /// The entries a listing yields: each a dictionary a template reads with dots (`entry.value`).
    private func entries(_ pattern: Pattern, below prefix: String?) -> [Any] {
        reads.selections.insert(pattern)
        guard snapshot.covers(selection: pattern) else {
            reads.uncovered.insert(pattern)
            return []
        }
        return snapshot.records(matching: pattern).map { record in
            reads.listed.insert(record.key)
            let relative = prefix.map { String(record.key.dropFirst($0 == "/" ? 1 : $0.count + 1)) }
            return [
                "key": record.key,
                "name": String(record.key.split(separator: "/").last ?? ""),
                "path": relative ?? record.key,
                "value": record.string ?? "",
                "signer": record.signer,
                "time": record.time,
            ] as [String: Any]
        }
    }

    // MARK: Arguments

    static func key(_ value: Any?, _ filter: String) throws -> Key {
        guard let text = value as? String else { throw TemplateSyntaxError("'\(filter)' expects a key such as \"/app/db/url\", got \(show(value))") }
        do { return try Key(text) } catch { throw TemplateSyntaxError("'\(filter)': \(error.description)") }
    }

    /// The optional default of `key` and `signer`: at most one argument.
    static func fallback(_ arguments: [Any?], _ filter: String) throws -> String? {
        guard arguments.count <= 1 else { throw TemplateSyntaxError("'\(filter)' takes at most one argument, the default") }
        return arguments.first.map(string)
    }

    static func string(_ value: Any?) -> String {
        switch value {
        case nil: ""
        case let text as String: text
        case let some?: String(describing: some)
        }
    }

    /// A short quote of a value for error messages.
    static func show(_ value: Any?) -> String {
        guard let value else { return "nothing" }
        let text = String(describing: value)
        return "\"" + (text.count > 60 ? text.prefix(60) + "…" : text) + "\""
    }
}
