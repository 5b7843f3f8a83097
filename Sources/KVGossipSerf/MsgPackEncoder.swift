/// Writes `MsgPackValue`s, always choosing the smallest encoding, as Serf's Go encoder does.
public enum MsgPackEncoder {
    /// The encoding of `value`.
    public static func encode(_ value: MsgPackValue) -> [UInt8] {
        var bytes: [UInt8] = []
        encode(value, into: &bytes)
        return bytes
    }

    /// Appends `value`. Lengths must fit in 32 bits (msgpack has no wider form).
    public static func encode(_ value: MsgPackValue, into out: inout [UInt8]) {
        switch value {
        case .null: out.append(0xc0)
        case .bool(let b): out.append(b ? 0xc3 : 0xc2)
        case .int(let v): v >= 0 ? encodeUnsigned(UInt64(v), into: &out) : encodeNegative(v, into: &out)
        case .uint(let v): encodeUnsigned(v, into: &out)
        case .float(let v):
            out.append(0xca)
            append(UInt64(v.bitPattern), width: 4, into: &out)
        case .double(let v):
            out.append(0xcb)
            append(v.bitPattern, width: 8, into: &out)
        case .string(let s):
            let utf8 = Array(s.utf8)
            encodeLength(utf8.count, fix: (0xa0, 31), forms: (0xd9, 0xda, 0xdb), into: &out)
            out.append(contentsOf: utf8)
        case .binary(let b):
            encodeLength(b.count, fix: nil, forms: (0xc4, 0xc5, 0xc6), into: &out)
            out.append(contentsOf: b)
        case .array(let elements):
            encodeLength(elements.count, fix: (0x90, 15), forms: (nil, 0xdc, 0xdd), into: &out)
            for e in elements { encode(e, into: &out) }
        case .map(let pairs):
            encodeLength(pairs.count, fix: (0x80, 15), forms: (nil, 0xde, 0xdf), into: &out)
            for (k, v) in pairs {
                encode(k, into: &out)
                encode(v, into: &out)
            }
        }
    }

    private static func encodeUnsigned(_ v: UInt64, into out: inout [UInt8]) {
        switch v {
        case 0...0x7f: out.append(UInt8(v))
        case 0...0xff: out.append(0xcc); append(v, width: 1, into: &out)
        case 0...0xffff: out.append(0xcd); append(v, width: 2, into: &out)
        case 0...0xffff_ffff: out.append(0xce); append(v, width: 4, into: &out)
        default: out.append(0xcf); append(v, width: 8, into: &out)
        }
    }

    private static func encodeNegative(_ v: Int64, into out: inout [UInt8]) {
        let bits = UInt64(bitPattern: v)
        switch v {
        case -32 ..< 0: out.append(UInt8(truncatingIfNeeded: bits))
        case Int64(Int8.min) ..< 0: out.append(0xd0); append(bits, width: 1, into: &out)
        case Int64(Int16.min) ..< 0: out.append(0xd1); append(bits, width: 2, into: &out)
        case Int64(Int32.min) ..< 0: out.append(0xd2); append(bits, width: 4, into: &out)
        default: out.append(0xd3); append(bits, width: 8, into: &out)
        }
    }

    /// `fix` is the fix-form base and its largest length; `forms` are the 8/16/32-bit type bytes
    /// (arrays and maps have no 8-bit form).
    private static func encodeLength(
        _ n: Int, fix: (base: UInt8, max: Int)?, forms: (UInt8?, UInt8, UInt8), into out: inout [UInt8]
    ) {
        precondition(n <= Int(UInt32.max), "msgpack lengths are at most 32 bits")
        if let fix, n <= fix.max {
            out.append(fix.base | UInt8(n))
        } else if let form8 = forms.0, n <= 0xff {
            out.append(form8); append(UInt64(n), width: 1, into: &out)
        } else if n <= 0xffff {
            out.append(forms.1); append(UInt64(n), width: 2, into: &out)
        } else {
            out.append(forms.2); append(UInt64(n), width: 4, into: &out)
        }
    }

    /// Big-endian, the low `width` bytes of `v`.
    private static func append(_ v: UInt64, width: Int, into out: inout [UInt8]) {
        for shift in stride(from: (width - 1) * 8, through: 0, by: -8) {
            out.append(UInt8(truncatingIfNeeded: v >> UInt64(shift)))
        }
    }
}
