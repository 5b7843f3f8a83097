import Glibc
import KVGossipTestSupport
import Testing

/// The probes kvgossip-bench reads processes and ports with (Tests/KVGossipTestSupport).
struct BenchProbeTests {
    /// A command name may hold spaces and parentheses; the fields are counted after the last ')'.
    @Test func cpuTicksAreUserSystemAndWaitedChildren() {
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 17 5 3 2 20 0 9 0 123 456 78 0"
        #expect(ProcessCPU.ticks(stat: stat) == 17 + 5 + 3 + 2)
        #expect(ProcessCPU.ticks(stat: "4242 (cut) S 1 2 3") == 0)
        #expect(ProcessCPU.ticks(stat: "") == 0)
    }

    @Test func thisProcessHasUsedSomeCPU() {
        var x = 0.0
        for i in 0..<3_000_000 { x += Double(i).squareRoot() }
        #expect(x > 0)
        #expect(ProcessCPU.seconds(ofTree: getpid()) > 0)
    }

    @Test func aPortInTheRangeIsFreeAndNotTaken() {
        let range = 40_000...49_999
        let taken = Set(range.filter { $0 % 2 == 0 })
        for _ in 0..<20 {
            let port = LoopbackPort.free(in: range, except: taken)
            #expect(range.contains(port) && port % 2 == 1)
        }
    }

    @Test func freePortsAreNeverHandedOutTwiceAndKeepBelowTheEphemeralRange() throws {
        let ports = (0..<200).map { _ in LoopbackPort.free() }
        #expect(Set(ports).count == ports.count)
        #expect(ports.allSatisfy(LoopbackPort.belowEphemeral.contains))
        let range = try String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)
        let first = try #require(range.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) })
        #expect(LoopbackPort.belowEphemeral.upperBound < first)
    }
}
