import Foundation
import KVGossipCore

/// A configuration mistake, said in one sentence naming the field.
public struct TemplateConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One template of a set: where its text is, where its output goes and how it is checked.
public struct TemplateSpec: Codable, Sendable, Equatable {
    public var source: String
    public var destination: String
    /// Octal permission bits of the output, e.g. `"0640"`. Default `0644`.
    public var mode: String?
    /// User name or uid owning the output. Default: the user running the command.
    public var owner: String?
    /// Group name or gid of the output. Default: the user's group.
    public var group: String?
    /// Run on the staged output before it replaces the destination; a non-zero exit keeps the old
    /// file. The staged file's path is in `$KVGOSSIP_STAGED`.
    public var check: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case source, destination, mode, owner, group, check
    }

    public init(source: String, destination: String, mode: String? = nil, owner: String? = nil, group: String? = nil, check: String? = nil) {
        self.source = source
        self.destination = destination
        self.mode = mode
        self.owner = owner
        self.group = group
        self.check = check
    }

    /// The permission bits `mode` names.
    public var permissions: UInt32 {
        get throws(TemplateConfigError) {
            guard let mode else { return 0o644 }
            // Permission bits only: set-user-ID, set-group-ID and sticky bits on a file a root
            // daemon renders from the tree are refused.
            guard let bits = UInt32(mode, radix: 8), bits <= 0o777 else {
                throw TemplateConfigError("mode of \(destination): expected octal permission bits up to 0777 such as 0644, got \"\(mode)\"")
            }
            return bits
        }
    }
}

/// A template set as `/etc/kvgossip/templates/NAME.json` spells it (Docs/templates.md §Configuration).
/// Every field is optional in the file; command-line flags add templates and override the rest.
public struct TemplateSetConfig: Codable, Sendable, Equatable {
    /// Agents to follow, tried in order: socket paths or HOST:PORT.
    public var control: [String]?
    /// The cluster's root public key (`ed25519:…`), which every record read is verified against
    /// (Docs/client.md §Verification). Needed with a HOST:PORT agent; without it the root is
    /// learned from the local socket.
    public var root: String?
    public var templates: [TemplateSpec]?
    /// Run once after a render changed at least one output.
    public var exec: String?
    /// `MIN[:MAX]`, see ``WaitWindow/parse(_:)``. Default `100ms:2s`.
    public var wait: String?
    /// Refuse to render while a key the templates use is dirty.
    public var waitSynced: Bool?
    /// How long `check` and `exec` may run, e.g. `30s`.
    public var commandTimeout: String?
    /// Where counters and the last error are written as JSON after each render cycle.
    public var statusFile: String?
    public var logLevel: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case control, root, templates, exec, wait, waitSynced, commandTimeout, statusFile, logLevel
    }

    public static let defaultWait = "100ms:2s"
    public static let defaultCommandTimeout = "30s"

    public init() {}

    /// Reads a configuration file's bytes. Unknown fields are refused: a misspelt `destination`
    /// must not silently become a template with no output.
    public static func decode(_ data: Data, path: String) throws(TemplateConfigError) -> TemplateSetConfig {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data) } catch {
            throw TemplateConfigError("\(path): not valid JSON")
        }
        guard let top = object as? [String: Any] else { throw TemplateConfigError("\(path): expected a JSON object") }
        if let refusal = UnknownFields.refusal(in: top, known: Set(CodingKeys.allNames)) {
            throw TemplateConfigError("\(path): \(refusal)")
        }
        for (index, entry) in ((top["templates"] as? [Any]) ?? []).enumerated() {
            if let fields = entry as? [String: Any], let refusal = UnknownFields.refusal(in: fields, known: Set(TemplateSpec.CodingKeys.allNames)) {
                throw TemplateConfigError("\(path): templates[\(index)]: \(refusal)")
            }
        }
        do { return try JSONDecoder().decode(TemplateSetConfig.self, from: data) } catch let DecodingError.keyNotFound(key, context) {
            throw TemplateConfigError("\(path): \(Self.place(context.codingPath + [key])) is required")
        } catch let DecodingError.typeMismatch(_, context) {
            throw TemplateConfigError("\(path): \(Self.place(context.codingPath)) has the wrong type")
        } catch {
            throw TemplateConfigError("\(path): \(error)")
        }
    }

    private static func place(_ path: [any CodingKey]) -> String {
        path.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().trimmingCharacters(in: ["."])
    }

    /// Fields set in `other` win; templates add up.
    public func overridden(by other: TemplateSetConfig) -> TemplateSetConfig {
        var out = self
        out.templates = (templates ?? []) + (other.templates ?? [])
        if let v = other.control, !v.isEmpty { out.control = v }
        if let v = other.root { out.root = v }
        if let v = other.exec { out.exec = v }
        if let v = other.wait { out.wait = v }
        if let v = other.waitSynced { out.waitSynced = v }
        if let v = other.commandTimeout { out.commandTimeout = v }
        if let v = other.statusFile { out.statusFile = v }
        if let v = other.logLevel { out.logLevel = v }
        return out
    }

    /// Relative `source` and `destination` paths read from `directory` (the config file's).
    public func resolvingPaths(against directory: String) -> TemplateSetConfig {
        func resolve(_ path: String) -> String { path.hasPrefix("/") ? path : directory + "/" + path }
        var out = self
        out.templates = templates?.map { spec in
            var spec = spec
            spec.source = resolve(spec.source)
            spec.destination = resolve(spec.destination)
            return spec
        }
        if let status = statusFile { out.statusFile = resolve(status) }
        return out
    }

    /// Every problem at once.
    public func problems() -> [String] {
        var out: [String] = []
        let specs = templates ?? []
        if specs.isEmpty { out.append("templates: at least one template is needed (--template SOURCE:DESTINATION or \"templates\" in --config)") }
        var destinations: Set<String> = []
        for spec in specs {
            if !destinations.insert(spec.destination).inserted { out.append("\(spec.destination) is the destination of two templates") }
            if spec.source.isEmpty || spec.destination.isEmpty { out.append("templates: source and destination may not be empty") }
            do { _ = try spec.permissions } catch { out.append(error.description) }
        }
        do { _ = try WaitWindow.parse(wait ?? Self.defaultWait) } catch { out.append(error.description) }
        if WaitWindow.duration(Substring(commandTimeout ?? Self.defaultCommandTimeout)).map({ $0 > .zero }) != true {
            out.append("commandTimeout: expected a duration such as 30s, got \"\(commandTimeout ?? "")\"")
        }
        return out
    }
}

extension CodingKey where Self: CaseIterable {
    static var allNames: [String] { allCases.map(\.stringValue) }
}
