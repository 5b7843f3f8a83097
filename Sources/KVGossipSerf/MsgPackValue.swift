/// One msgpack value, as it travels on the wire.
///
/// Maps keep their pairs in wire order (and may repeat a key) because the encoder must be able to
/// reproduce a peer's bytes exactly and Serf's Go decoder does not care about order.
///
/// Integers: the wire keeps a sign only for negative numbers (a non-negative number is encoded in its
/// smallest *unsigned* form), so `.int(5)` and `.uint(5)` are equal and encode to the same byte.
/// Floats compare by bit pattern, so a NaN round-trips equal to itself.
public enum MsgPackValue: Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case uint(UInt64)
    case float(Float)
    case double(Double)
    case string(String)
    case binary([UInt8])
    case array([MsgPackValue])
    case map([(MsgPackValue, MsgPackValue)])
}

extension MsgPackValue: Equatable {
    public static func == (lhs: MsgPackValue, rhs: MsgPackValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.int, .int), (.int, .uint), (.uint, .int), (.uint, .uint):
            guard let a = lhs.integerKey, let b = rhs.integerKey else { return false }
            return a.negative == b.negative && a.bits == b.bits
        case (.float(let a), .float(let b)): return a.bitPattern == b.bitPattern
        case (.double(let a), .double(let b)): return a.bitPattern == b.bitPattern
        case (.string(let a), .string(let b)): return a == b
        case (.binary(let a), .binary(let b)): return a == b
        case (.array(let a), .array(let b)): return a == b
        case (.map(let a), .map(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// A sign flag plus magnitude bits, so that equal numbers compare equal whatever case holds them.
    private var integerKey: (negative: Bool, bits: UInt64)? {
        switch self {
        case .int(let v): (v < 0, UInt64(bitPattern: v))
        case .uint(let v): (false, v)
        default: nil
        }
    }
}

// MARK: - Reading

extension MsgPackValue {
    /// The first value stored under the string key `key`, when this is a map.
    public subscript(key: String) -> MsgPackValue? {
        guard case .map(let pairs) = self else { return nil }
        for (k, v) in pairs where k.stringValue == key { return v }
        return nil
    }

    public var isNull: Bool {
        if case .null = self { true } else { false }
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { b } else { nil }
    }

    public var stringValue: String? {
        if case .string(let s) = self { s } else { nil }
    }

    public var binaryValue: [UInt8]? {
        if case .binary(let b) = self { b } else { nil }
    }

    public var arrayValue: [MsgPackValue]? {
        if case .array(let a) = self { a } else { nil }
    }

    public var mapValue: [(MsgPackValue, MsgPackValue)]? {
        if case .map(let m) = self { m } else { nil }
    }

    /// The number as an unsigned integer, when it is a non-negative integer of either case.
    public var uint64Value: UInt64? {
        switch self {
        case .uint(let v): v
        case .int(let v) where v >= 0: UInt64(v)
        default: nil
        }
    }

    /// The number as a signed integer, when it is an integer that fits.
    public var int64Value: Int64? {
        switch self {
        case .int(let v): v
        case .uint(let v) where v <= UInt64(Int64.max): Int64(v)
        default: nil
        }
    }
}

// MARK: - Literals (used to spell request bodies and test vectors)

extension MsgPackValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: MsgPackValue...) { self = .array(elements) }
    /// Keeps the literal's order, which is the wire order.
    public init(dictionaryLiteral elements: (MsgPackValue, MsgPackValue)...) { self = .map(elements) }
}

extension MsgPackValue: CustomStringConvertible {
    public var description: String {
        switch self {
        case .null: "nil"
        case .bool(let b): "\(b)"
        case .int(let v): "\(v)"
        case .uint(let v): "\(v)"
        case .float(let v): "\(v)f"
        case .double(let v): "\(v)"
        case .string(let s): "\"\(s)\""
        case .binary(let b): "bin(\(b.count))"
        case .array(let a): "[" + a.map(\.description).joined(separator: ", ") + "]"
        case .map(let m): "{" + m.map { "\($0.0): \($0.1)" }.joined(separator: ", ") + "}"
        }
    }
}
