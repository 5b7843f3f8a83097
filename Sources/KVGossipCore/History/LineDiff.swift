/// A line diff between two versions of a value, for `kvgossip log -p` (Docs/history.md §Reading the log).
/// The longest common subsequence of lines, computed only for values small enough that its
/// quadratic table stays bounded; larger or binary values are summarized instead.
public enum LineDiff {
    public enum Line: Equatable, Sendable {
        case same(String)
        case removed(String)
        case added(String)
    }

    public enum Outcome: Equatable, Sendable {
        case lines([Line])
        /// At least one side is not UTF-8 text.
        case binary
        /// Too many lines to compare line by line within the bound.
        case tooLarge
    }

    /// The most cells of the comparison table (lines of one side times lines of the other).
    public static let maxCells = 4_000_000

    public static func compare(old: [UInt8], new: [UInt8]) -> Outcome {
        guard let a = String(validating: old, as: UTF8.self), let b = String(validating: new, as: UTF8.self) else { return .binary }
        let x = lines(a), y = lines(b)
        guard (x.count + 1) * (y.count + 1) <= maxCells else { return .tooLarge }
        return .lines(compare(x, y))
    }

    static func lines(_ text: String) -> [String] {
        guard !text.isEmpty else { return [] }
        var out = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if text.hasSuffix("\n") { out.removeLast() }
        return out
    }

    /// Lines of `x` and `y` in order, common ones once: removals before additions at each change.
    static func compare(_ x: [String], _ y: [String]) -> [Line] {
        let n = x.count, m = y.count
        // suffix[i][j]: common lines of x[i...] and y[j...], in one flat table.
        var suffix = [Int32](repeating: 0, count: (n + 1) * (m + 1))
        let width = m + 1
        for i in stride(from: n - 1, through: 0, by: -1) {
            for j in stride(from: m - 1, through: 0, by: -1) {
                suffix[i * width + j] = x[i] == y[j]
                    ? suffix[(i + 1) * width + j + 1] + 1
                    : max(suffix[(i + 1) * width + j], suffix[i * width + j + 1])
            }
        }
        var out: [Line] = []
        var i = 0, j = 0
        while i < n || j < m {
            if i < n, j < m, x[i] == y[j] {
                out.append(.same(x[i]))
                i += 1
                j += 1
            } else if i < n, j == m || suffix[(i + 1) * width + j] >= suffix[i * width + j + 1] {
                out.append(.removed(x[i]))
                i += 1
            } else {
                out.append(.added(y[j]))
                j += 1
            }
        }
        return out
    }
}
