import Glibc

public enum LoopbackPort {
    /// A TCP port on 127.0.0.1 that was free a moment ago (bound and released; the process under
    /// test binds it right after).
    public static func free() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = address(0)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// A TCP port in `range` on 127.0.0.1 that was free a moment ago and is not in `taken`: random
    /// ports are tried until one binds. For runs that must keep out of the kernel's ephemeral
    /// range, where other processes on the machine get their ports. Traps after 10,000 tries.
    public static func free(in range: ClosedRange<Int>, except taken: Set<Int> = []) -> Int {
        for _ in 0..<10_000 {
            let port = Int.random(in: range)
            if !taken.contains(port), binds(port) { return port }
        }
        preconditionFailure("no free port in \(range)")
    }

    static func binds(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
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
