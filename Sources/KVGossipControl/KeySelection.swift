import KVGossipCore

/// The keys a `list` or `watch` request selects: one key, a prefix (the key itself and everything
/// below it), a pattern, or every key. Parsed once per request, so deciding whether a change
/// belongs to a watch never re-parses text.
public enum KeySelection: Sendable, Equatable {
    case key(Key)
    /// The key and every key below it; nil: every key.
    case prefix(Key?)
    case pattern(Pattern)
    /// Keys matching any of these (at most `ControlRequest.maxPatterns`).
    case patterns([Pattern])

    /// The request's `patterns`, `pattern`, `key` or `prefix` (`/`, empty or absent: everything),
    /// the first one given.
    public init(_ request: ControlRequest) throws(ControlError) {
        if let texts = request.patterns {
            guard texts.count <= ControlRequest.maxPatterns else {
                throw ControlError(reason: "bad-request", message: "\(texts.count) patterns; at most \(ControlRequest.maxPatterns)")
            }
            var parsed: [Pattern] = []
            for text in texts {
                do { parsed.append(try Pattern(text)) } catch { throw ControlError(reason: "bad-request", message: error.description) }
            }
            self = .patterns(parsed)
        } else if let text = request.pattern {
            do { self = .pattern(try Pattern(text)) } catch { throw ControlError(reason: "bad-request", message: error.description) }
        } else if let text = request.key {
            do { self = .key(try Key(text)) } catch { throw ControlError(reason: "invalid-key", message: error.description) }
        } else if let text = request.prefix, text != "/", !text.isEmpty {
            do { self = .prefix(try Key(text)) } catch { throw ControlError(reason: "invalid-key", message: error.description) }
        } else {
            self = .prefix(nil)
        }
    }

    public func contains(_ key: Key) -> Bool {
        switch self {
        case .key(let one): key == one
        case .prefix(nil): true
        case .prefix(let p?): key == p || key.path.utf8.starts(with: p.path.utf8 + [UInt8(ascii: "/")])
        case .pattern(let pattern): pattern.matches(key)
        case .patterns(let patterns): patterns.contains { $0.matches(key) }
        }
    }

    /// Like `contains`, for a key read from the store as text.
    package func contains(path: String) -> Bool {
        switch self {
        case .prefix: true  // the store scan is already narrowed to exactly these keys
        case .key(let one): path == one.path
        case .pattern(let pattern): (try? Key(path)).map(pattern.matches) ?? false
        case .patterns(let patterns): (try? Key(path)).map { key in patterns.contains { $0.matches(key) } } ?? false
        }
    }

    /// The narrowest prefix a store scan needs to read: every selected key is it or lies below it.
    package var scanPrefix: Key? {
        switch self {
        case .key(let one): one
        case .prefix(let p): p
        case .pattern(let pattern): pattern.literalPrefix.isEmpty ? nil : try? Key(pattern.literalPrefix)
        case .patterns: nil
        }
    }

    /// The one key selected, for a watch of one key.
    var singleKey: Key? {
        if case .key(let one) = self { one } else { nil }
    }
}
