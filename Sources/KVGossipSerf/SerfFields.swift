/// Typed reads from a reply body, failing with the field's name.
struct SerfFields {
    let value: MsgPackValue
    var context: String

    init(_ value: MsgPackValue, _ context: String) throws(SerfError) {
        guard case .map = value else { throw .malformedReply("\(context) is not a map") }
        self.value = value
        self.context = context
    }

    func string(_ key: String) throws(SerfError) -> String {
        guard let s = value[key]?.stringValue else { throw missing(key, "a string") }
        return s
    }

    func integer<T: FixedWidthInteger>(_ key: String, default fallback: T? = nil) throws(SerfError) -> T {
        guard let field = value[key] else {
            if let fallback { return fallback }
            throw missing(key, "an integer")
        }
        guard let v = field.uint64Value, let t = T(exactly: v) else { throw missing(key, "an integer in range") }
        return t
    }

    func bool(_ key: String, default fallback: Bool) throws(SerfError) -> Bool {
        guard let field = value[key] else { return fallback }
        guard let b = field.boolValue else { throw missing(key, "a bool") }
        return b
    }

    /// Go's `[]byte`: bin, or nil for an empty/absent payload.
    func bytes(_ key: String) throws(SerfError) -> [UInt8] {
        switch value[key] {
        case nil, .null?: return []
        case .binary(let b)?: return b
        default: throw missing(key, "binary")
        }
    }

    func array(_ key: String) throws(SerfError) -> [MsgPackValue] {
        switch value[key] {
        case .null?: return []
        case .array(let a)?: return a
        default: throw missing(key, "an array")
        }
    }

    /// Go's `map[string]string` (nil when empty).
    func stringMap(_ key: String) throws(SerfError) -> [String: String] {
        switch value[key] {
        case nil, .null?: return [:]
        case .map(let pairs)?:
            var result: [String: String] = [:]
            for (k, v) in pairs {
                guard let k = k.stringValue, let v = v.stringValue else { throw missing(key, "a map of strings") }
                result[k] = v
            }
            return result
        default: throw missing(key, "a map")
        }
    }

    private func missing(_ key: String, _ what: String) -> SerfError {
        .malformedReply("\(context): \(key) is not \(what)")
    }
}
