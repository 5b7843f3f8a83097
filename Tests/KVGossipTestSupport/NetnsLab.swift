import Foundation
import Glibc
import Synchronization

/// Hosts for tests in network namespaces of their own, all joined to one bridge that lives in a
/// namespace of its own as well, so no traffic touches the machine's real interfaces. Every name
/// carries this process's id; `deinit` deletes the namespaces (which takes their links along).
///
/// Processes enter a host with `nsenter --net=PATH` (not `ip netns exec`, which gives the child a
/// private mount namespace and would hide FUSE mounts from the test).
public final class NetnsLab: @unchecked Sendable {
    public let hosts: [String]
    private let bridge: String
    private let subnet: Int

    /// Creates `count` hosts at 10.232.S.1 … 10.232.S.count.
    public init(count: Int) throws {
        precondition((1...200).contains(count))
        // Unique per lab (labs of one process may exist at once); interface names stay under 16 bytes.
        let serial = NetnsLab.serial.add(1, ordering: .relaxed).newValue % 1296
        let tag = "kvg\(getpid() % 10_000)" + String(serial, radix: 36)
        bridge = "\(tag)br"
        hosts = (0..<count).map { "\(tag)h\($0)" }
        subnet = Int((Int(getpid()) + serial) % 200) + 20
        do {
            try Self.sh("ip netns add \(bridge) && ip -n \(bridge) link add br0 type bridge && ip -n \(bridge) link set br0 up && ip -n \(bridge) link set lo up")
            // Every host gets a TCP socket table of its own, as each real host has one, if small:
            // a namespace takes the size of its table from its creator's namespace, so the hosts
            // are made from inside the bridge's, which asks for 1,024 buckets (the kernel sizes the
            // host's TIME_WAIT and SYN backlog limits from it too: 512 and 128, ample here).
            // Kernels before 6.1 lack the setting and share the machine's table, 262,144 buckets
            // on this 24 GiB VM, which anything listing a host's sockets (/proc/PID/net/tcp)
            // walks whole: 3.7 ms per read there, 0.08 ms in a table of 1,024.
            _ = try? Self.sh("ip netns exec \(bridge) sysctl -qw net.ipv4.tcp_child_ehash_entries=1024 2>/dev/null")
            for (i, host) in hosts.enumerated() {
                // One veth pair per host: "eth0" inside the host, "p<i>" on the bridge.
                try Self.sh("""
                    nsenter --net=/run/netns/\(bridge) ip netns add \(host) && \
                    ip link add \(tag)v\(i) type veth peer name \(tag)p\(i) && \
                    ip link set \(tag)v\(i) netns \(host) && ip link set \(tag)p\(i) netns \(bridge) && \
                    ip -n \(host) link set \(tag)v\(i) name eth0 && ip -n \(bridge) link set \(tag)p\(i) name p\(i) && \
                    ip -n \(bridge) link set p\(i) master br0 && ip -n \(bridge) link set p\(i) up && \
                    ip -n \(host) addr add \(ip(i))/24 dev eth0 && ip -n \(host) link set eth0 up && ip -n \(host) link set lo up
                    """)
            }
        } catch {
            tearDown()
            throw error
        }
    }

    private static let serial = Atomic<Int>(0)

    deinit { tearDown() }

    /// Deletes the namespaces now (a process about to exit does not run `deinit`).
    public func tearDown() {
        for name in hosts + [bridge] { _ = try? Self.sh("ip netns del \(name) 2>/dev/null || true") }
    }

    /// The address of host `i`.
    public func ip(_ i: Int) -> String { "10.232.\(subnet).\(i + 1)" }

    /// `nsenter --net=…` arguments that run a command in host `i`.
    public func enter(_ i: Int) -> [String] { ["--net=/run/netns/\(hosts[i])"] }

    /// Drops every packet host `i` receives from any host outside `group` (nftables in host `i`).
    public func isolate(_ i: Int, from others: [Int]) throws {
        let host = hosts[i]
        try Self.sh("ip netns exec \(host) nft add table inet kvgpart")
        try Self.sh("ip netns exec \(host) nft 'add chain inet kvgpart input { type filter hook input priority 0 ; }'")
        for other in others { try Self.sh("ip netns exec \(host) nft add rule inet kvgpart input ip saddr \(ip(other)) drop") }
    }

    /// Splits the hosts into groups that cannot reach each other.
    public func partition(_ groups: [[Int]]) throws {
        for group in groups {
            let others = groups.filter { $0 != group }.flatMap { $0 }
            for i in group { try isolate(i, from: others) }
        }
    }

    /// Undoes every partition.
    public func heal() throws {
        for host in hosts { _ = try? Self.sh("ip netns exec \(host) nft delete table inet kvgpart 2>/dev/null || true") }
    }

    /// Whether this machine can run a lab (root, iproute2 and nftables).
    public static var unavailableReason: String? {
        if getuid() != 0 { return "needs root" }
        for tool in ["/usr/sbin/nft", "/sbin/nft"] where FileManager.default.isExecutableFile(atPath: tool) { return nil }
        return "needs nftables (Scripts/install-deps installs it)"
    }

    /// Runs a shell command; throws with its output on a non-zero exit.
    @discardableResult
    public static func sh(_ command: String) throws -> String {
        let (status, text) = try ProgramRun.combined("/bin/sh", ["-c", command])
        guard status == 0 else { throw NetnsLabError(command: command, status: status, output: text) }
        return text
    }
}

public struct NetnsLabError: Error, CustomStringConvertible {
    public let command: String
    public let status: Int32
    public let output: String
    public var description: String { "`\(command)` failed (\(status)): \(output)" }
}
