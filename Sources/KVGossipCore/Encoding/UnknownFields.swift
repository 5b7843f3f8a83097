/// Settings files refuse fields they do not know, so a misspelt name is an error instead of a
/// setting silently left at its default. Shared by the agent's settings and the template tool's.
public enum UnknownFields {
    /// Why `object` cannot be read, in words (`unknown field "mountUid" (known: …)`), or nil when
    /// every field is in `known`.
    public static func refusal(in object: [String: Any], known: Set<String>) -> String? {
        let unknown = object.keys.filter { !known.contains($0) }.sorted()
        guard !unknown.isEmpty else { return nil }
        let names = unknown.map { "\"\($0)\"" }.joined(separator: ", ")
        return "unknown field\(unknown.count == 1 ? "" : "s") \(names) (known: \(known.sorted().joined(separator: ", ")))"
    }
}
