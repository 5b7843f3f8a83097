import Foundation
import Glibc

/// The kernel's handle on one FUSE mount (fusectl, `/sys/fs/fuse/connections/N`).
public enum FuseConnection {
    /// Aborts the connection behind the FUSE mount at `mountpoint`: every request waiting for its
    /// server fails at once, and so does every later one. It frees a process stuck on a mount whose
    /// server is dead or hung (as an agent that replayed changes through its own mount could be,
    /// before the replay helper; see Docs/filesystem.md §The replay helper). Returns false when
    /// there is no such mount or no fusectl.
    @discardableResult
    public static func abort(mountpoint: String) -> Bool {
        guard let minor = minorDevice(of: mountpoint) else { return false }
        let fd = open("/sys/fs/fuse/connections/\(minor)/abort", O_WRONLY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return write(fd, "1", 1) == 1
    }

    /// The minor device number of the FUSE mount at `mountpoint`, which names its connection; read
    /// from /proc/self/mountinfo, since a stat of a mount whose server is gone could hang.
    static func minorDevice(of mountpoint: String) -> Int? {
        let info = ProcFile.read("/proc/self/mountinfo") ?? ""
        for line in info.split(separator: "\n") {
            // "ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS ... - TYPE SOURCE ..."
            let fields = line.split(separator: " ")
            guard fields.count > 4, fields[4] == mountpoint, line.contains(" - fuse") else { continue }
            return fields[2].split(separator: ":").last.flatMap { Int($0) }
        }
        return nil
    }
}
