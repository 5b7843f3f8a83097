/// A thread of this process as /proc/self/task/TID/status tells it.
public enum ThreadStatus {
    /// The value of the line `name` ("State", "voluntary_ctxt_switches"); nil when unreadable.
    public static func field(_ name: String, thread: Int32) -> String? {
        let status = ProcFile.read("/proc/self/task/\(thread)/status") ?? ""
        return status.split(separator: "\n").first { $0.hasPrefix(name + ":") }
            .map { $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces) }
    }

    /// How many times the thread has gone to sleep (its voluntary context switches); -1 when
    /// unreadable.
    public static func sleeps(_ thread: Int32) -> Int {
        field("voluntary_ctxt_switches", thread: thread).flatMap { Int($0) } ?? -1
    }
}
