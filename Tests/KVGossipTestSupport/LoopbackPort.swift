import Glibc
import Synchronization

public enum LoopbackPort {
    /// A port on 127.0.0.1 that was free a moment ago for both TCP and UDP (bound and released;
    /// the process under test binds it right after), and that this process has not handed out
    /// before. Both protocols, because a port handed to `serf agent` as its bind port is used for
    /// TCP and UDP. Below the kernel's ephemeral range, because a test that stops a process and
    /// starts it again on the same ports would otherwise race every outgoing connection on the
    /// machine for them: one took a restarted Serf's RPC port in a suite run beside two busy loops
    /// ("bind: address already in use").
    public static func free() -> Int {
        free(in: belowEphemeral)
    }

    /// 10,000 up to the first port of the kernel's ephemeral range (`ip_local_port_range`), or
    /// 10,000–32,767 when that cannot be read or starts too low to leave 1,000 ports.
    public static let belowEphemeral: ClosedRange<Int> = {
        let text = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
        let first = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first.flatMap { Int($0) }
        guard let first, first > 11_000 else { return 10_000...32_767 }
        return 10_000...(first - 1)
    }()

    /// Ports `free` has handed out, never handed out again: a stopped process's port stays its own
    /// for the rest of the run.
    private static let handedOut = Mutex<Set<Int>>([])

    /// A port in `range` on 127.0.0.1 that was free a moment ago for TCP and UDP, is not in
    /// `taken` and was not handed out before: random ports are tried until one binds. Traps after
    /// 10,000 tries.
    public static func free(in range: ClosedRange<Int>, except taken: Set<Int> = []) -> Int {
        for _ in 0..<10_000 {
            let port = Int.random(in: range)
            guard !taken.contains(port), handedOut.withLock({ $0.insert(port).inserted }) else { continue }
            if binds(port, Int32(SOCK_STREAM.rawValue)), binds(port, Int32(SOCK_DGRAM.rawValue)) { return port }
        }
        preconditionFailure("no free port in \(range)")
    }

    /// Whether a socket of `type` binds 127.0.0.1:`port` now.
    static func binds(_ port: Int, _ type: Int32) -> Bool {
        let fd = socket(AF_INET, type, 0)
        defer { close(fd) }
        var addr = address(port)
        return withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
    }

    /// 127.0.0.1:`port` (0: any port).
    static func address(_ port: Int) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        return addr
    }
}
