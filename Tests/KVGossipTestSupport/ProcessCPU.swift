import Foundation

/// CPU time a process has used, as /proc/PID/stat tells it.
public enum ProcessCPU {
    /// Seconds of CPU (user + system, every thread) used by `pid`, by the children it has waited
    /// for, and by its descendants still running; 0 once the process is gone.
    public static func seconds(ofTree pid: Int32) -> Double {
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return Double(ownTicks(pid)) / ticks + children(of: pid).reduce(0) { $0 + seconds(ofTree: $1) }
    }

    /// utime + stime + cutime + cstime, fields 14 to 17 of /proc/PID/stat (counted after the
    /// command name, which may hold spaces and ends at the last ')').
    static func ownTicks(_ pid: Int32) -> Int {
        (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)).map(ticks(stat:)) ?? 0
    }

    /// The sum of those four fields in the text of a stat file; 0 when it is cut short.
    public static func ticks(stat text: String) -> Int {
        guard let close = text.lastIndex(of: ")") else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] is the state (field 3), so field k is fields[k - 3].
        guard fields.count > 14 else { return 0 }
        return (11...14).reduce(0) { $0 + (Int(fields[$1]) ?? 0) }
    }

    /// The children of every thread of `pid` (/proc/PID/task/TID/children).
    static func children(of pid: Int32) -> [Int32] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.flatMap { tid in
            ((try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/children", encoding: .utf8)) ?? "")
                .split(separator: " ").compactMap { Int32($0) }
        }
    }
}
