import Foundation

/// A process's memory as /proc/PID/status tells it, in MiB (-1 when unreadable).
public enum ProcessMemory {
    /// Resident memory now (VmRSS).
    public static func resident(_ pid: Int32) -> Double { field("VmRSS", pid) }

    /// Resident anonymous memory now (RssAnon): the heap, without file pages such as SQLite's
    /// memory-mapped database.
    public static func anonymous(_ pid: Int32) -> Double { field("RssAnon", pid) }

    /// The peak resident size since start or since the last `resetPeak` (VmHWM).
    public static func peak(_ pid: Int32) -> Double { field("VmHWM", pid) }

    /// Resets the peak mark to the current size (writing 5 to /proc/PID/clear_refs) and returns
    /// the current resident size.
    @discardableResult
    public static func resetPeak(_ pid: Int32) -> Double {
        let now = resident(pid)
        try? "5".write(toFile: "/proc/\(pid)/clear_refs", atomically: false, encoding: .utf8)
        return now
    }

    static func field(_ name: String, _ pid: Int32) -> Double {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }),
            let kb = Double(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "")
        else { return -1 }
        return kb / 1024
    }
}
