import Foundation

/// `--json` output: one pretty, key-sorted document on stdout, so scripts and diffs are stable.
enum JSONOutput {
    static func print<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        StandardStreams.write(data)
        StandardStreams.write(Data("\n".utf8))
    }

    /// One compact document per line, for streams (`watch --json`).
    static func printLine<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        StandardStreams.write(try encoder.encode(value) + Data("\n".utf8))
    }
}

/// A `--json` array written element by element as the elements arrive, laid out exactly as
/// `JSONOutput.print` lays out a whole array, so the output does not depend on its size.
final class JSONArrayStream {
    private var count = 0

    func begin() { StandardStreams.write(Data("[".utf8)) }

    func element<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let text = String(decoding: try encoder.encode(value), as: UTF8.self)
        let indented = text.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n")
        StandardStreams.write(Data(((count == 0 ? "\n" : ",\n") + indented).utf8))
        count += 1
    }

    func end() { StandardStreams.write(Data((count == 0 ? "\n\n]\n" : "\n]\n").utf8)) }
}

/// Parses durations like `90s`, `15m`, `12h`, `30d` into milliseconds.
enum DurationText {
    static func milliseconds(_ text: String) -> UInt64? {
        guard let unit = text.last, let n = UInt64(text.dropLast()), n > 0 else { return nil }
        let scale: UInt64
        switch unit {
        case "s": scale = 1000
        case "m": scale = 60_000
        case "h": scale = 3_600_000
        case "d": scale = 86_400_000
        default: return nil
        }
        let (ms, overflow) = n.multipliedReportingOverflow(by: scale)
        return overflow ? nil : ms
    }
}
