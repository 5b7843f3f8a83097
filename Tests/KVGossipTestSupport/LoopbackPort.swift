import Glibc

public enum LoopbackPort {
    /// A port on 127.0.0.1 that was free a moment ago for both TCP and UDP (bound and released;
    /// the process under test binds it right after). Both, because a port handed to `serf agent`
    /// as its bind port is used for TCP and UDP, and a UDP socket elsewhere on the port would make
    /// it fail to start.
    public static func free() -> Int {
        for _ in 0..<1_000 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var addr = address(0)
            _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
            let port = Int(UInt16(bigEndian: addr.sin_port))
            if binds(port, Int32(SOCK_DGRAM.rawValue)) { return port }
        }
        preconditionFailure("no port free for both TCP and UDP")
    }

    /// A port in `range` on 127.0.0.1 that was free a moment ago for TCP and UDP and is not in
    /// `taken`: random ports are tried until one binds. For runs that must keep out of the
    /// kernel's ephemeral range, where other processes on the machine get their ports. Traps after
    /// 10,000 tries.
    public static func free(in range: ClosedRange<Int>, except taken: Set<Int> = []) -> Int {
        for _ in 0..<10_000 {
            let port = Int.random(in: range)
            if !taken.contains(port), binds(port, Int32(SOCK_STREAM.rawValue)), binds(port, Int32(SOCK_DGRAM.rawValue)) { return port }
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
