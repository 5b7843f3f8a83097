import Foundation
import KVGossipTestSupport
import KVGossipTestTraits
import Testing

/// `--metrics-listen`: Prometheus text over real HTTP from a real agent.
@Suite(.integration) struct MetricsTests {
    /// One HTTP/1.1 request with `Connection: close`; the whole response as text.
    static func http(_ method: String, _ path: String, port: Int) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw CLIError("connect to \(port): errno \(errno)") }
        let request = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            response += buffer[0..<n]
        }
        return String(decoding: response, as: UTF8.self)
    }

    @Test func metricsReportTheStoreAndAnswerOnlyGetMetrics() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let root = try cli.keygen("root.key")
        let port = LoopbackPort.free()
        let agent = try AgentProcess(cli: cli, root: root, extraArgs: ["--key", "root.key", "--metrics-listen", "127.0.0.1:\(port)"])
        #expect(try agent.run(["set", "/app/a", "1"]).status == 0)
        #expect(try agent.run(["set", "/app/b", "2"]).status == 0)
        var text = ""
        Readiness.wait {
            text = (try? Self.http("GET", "/metrics", port: port)) ?? ""
            return text.contains("200 OK")
        }
        #expect(text.hasPrefix("HTTP/1.1 200 OK"), "\(text)")
        #expect(text.contains("Content-Type: text/plain; version=0.0.4"))
        #expect(text.contains("\nkvgossip_records 2\n"), "\(text)")
        #expect(text.contains("\nkvgossip_build_info{sync_protocol=\"2\",version=\"0."))
        #expect(text.contains("\nkvgossip_refusals_total{reason=\"bad-signature\"} 0\n"))
        #expect(text.contains("\nkvgossip_mounted 0\n"))
        #expect(try Self.http("GET", "/", port: port).hasPrefix("HTTP/1.1 404"))
        #expect(try Self.http("POST", "/metrics", port: port).hasPrefix("HTTP/1.1 405"))
        let bad = try cli.run(["agent", "--root", root, "--metrics-listen", "nowhere", "--check-config"])
        #expect(bad.status != 0 && bad.stderr.contains("metricsListen"))
    }
}
