import Glibc

/// How a child ended, decoded from the raw status `waitpid` reports. Nothing here waits with
/// `WUNTRACED` or `WCONTINUED`, so a status is never a stop or a continuation.
public struct WaitStatus: Sendable, Equatable, CustomStringConvertible {
    public let raw: Int32

    public init(raw: Int32) { self.raw = raw }

    /// Marks a child reaped by someone else, whose status is lost.
    public static let unknown = WaitStatus(raw: -1)

    /// The exit code, when the process exited by itself (the low seven bits are 0 then).
    public var exitCode: Int32? { raw != Self.unknown.raw && raw & 0x7f == 0 ? (raw >> 8) & 0xff : nil }
    /// The signal that killed it, otherwise.
    public var signal: Int32? { raw != Self.unknown.raw && raw & 0x7f != 0 ? raw & 0x7f : nil }

    /// What a shell reports for it: the exit code, or 128 plus the signal.
    public var shellCode: Int32 { exitCode ?? 128 + (signal ?? 0) }

    public var description: String {
        if let exitCode { return "exit code \(exitCode)" }
        if let signal { return "killed by signal \(signal)" }
        return "unknown status"
    }

    /// How `pid` ended, reaping it, without waiting: nil while it runs, `unknown` if it cannot be
    /// waited for (reaped by someone else).
    public static func ifEnded(_ pid: pid_t) -> WaitStatus? {
        var raw: Int32 = 0
        switch waitpid(pid, &raw, WNOHANG) {
        case 0: return nil
        case pid: return WaitStatus(raw: raw)
        default: return .unknown
        }
    }

    /// Waits for `pid` to end, across signals, and reaps it; `unknown` if it cannot be waited for.
    public static func waitFor(_ pid: pid_t) -> WaitStatus {
        var raw: Int32 = 0
        while true {
            if waitpid(pid, &raw, 0) == pid { return WaitStatus(raw: raw) }
            if errno != EINTR { return .unknown }
        }
    }
}
