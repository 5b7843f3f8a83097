/// Text for the raw address bytes Serf sends (Go's `net.IP`).
enum IPAddressText {
    static func format(_ bytes: [UInt8], context: String) throws(SerfError) -> String {
        switch bytes.count {
        case 4:
            return bytes.map(String.init).joined(separator: ".")
        case 16 where bytes[0 ..< 10].allSatisfy { $0 == 0 } && bytes[10] == 0xff && bytes[11] == 0xff:
            // Go may hold an IPv4 address in its 16-byte form; peers must see the same text either way.
            return bytes[12...].map(String.init).joined(separator: ".")
        case 16:
            return formatIPv6(bytes)
        default:
            throw .malformedReply("\(context): Addr has \(bytes.count) bytes")
        }
    }

    /// RFC 5952: lower-case hex groups, the longest run (≥ 2, first on a tie) of zero groups as `::`.
    private static func formatIPv6(_ bytes: [UInt8]) -> String {
        let groups = (0 ..< 8).map { UInt16(bytes[2 * $0]) << 8 | UInt16(bytes[2 * $0 + 1]) }
        var best: Range<Int>?
        var i = 0
        while i < 8 {
            guard groups[i] == 0 else { i += 1; continue }
            var j = i
            while j < 8, groups[j] == 0 { j += 1 }
            if j - i >= 2, j - i > (best?.count ?? 0) { best = i ..< j }
            i = j
        }
        let hex = { (range: Range<Int>) in groups[range].map { String($0, radix: 16) }.joined(separator: ":") }
        guard let best else { return hex(0 ..< 8) }
        return hex(0 ..< best.lowerBound) + "::" + hex(best.upperBound ..< 8)
    }
}
