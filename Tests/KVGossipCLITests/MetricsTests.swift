import Foundation
import KVGossipTestSupport
import Synchronization
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

    /// An agent with the root's key serving metrics on a free port, in `cli`'s directory.
    /// Whether `/metrics` on `port` answers 200 OK, within the usual wait.
    static func serving(_ port: Int) -> Bool {
        Readiness.wait { ((try? http("GET", "/metrics", port: port)) ?? "").contains("200 OK") }
    }

    static func metricsAgent(_ cli: CLIProcess) throws -> (agent: AgentProcess, root: String, port: Int) {
        let root = try cli.keygen("root.key")
        let port = LoopbackPort.free()
        let agent = try AgentProcess(cli: cli, root: root, extraArgs: ["--key", "root.key", "--metrics-listen", "127.0.0.1:\(port)"])
        return (agent, root, port)
    }

    @Test func metricsReportTheStoreAndAnswerOnlyGetMetrics() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let (agent, root, port) = try Self.metricsAgent(cli)
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

    /// 16 keep-alive clients on the scraper's own address, each answered once and then quiet: a
    /// cap per address refused the scraper (4 such clients were enough). Now the scrape takes
    /// the slot of the oldest of them.
    @Test func clientsOnTheScrapersAddressDoNotKeepItOut() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let (agent, _, port) = try Self.metricsAgent(cli)
        defer { agent.stop() }
        #expect(Self.serving(port))
        let held = (0..<16).compactMap { _ -> RawSocket? in
            guard let socket = RawSocket(tcpPort: port, timeout: 10) else { return nil }
            socket.send(Array("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
            // Read the head: the connection has been answered once (and stays open).
            var seen: [UInt8] = []
            while !String(decoding: seen, as: UTF8.self).contains("\r\n\r\n"), let byte = socket.read(exactly: 1) { seen += byte }
            return seen.isEmpty ? nil : socket
        }
        #expect(held.count == 16)
        let scrape = try Self.http("GET", "/metrics", port: port)
        #expect(scrape.hasPrefix("HTTP/1.1 200 OK"), "\(scrape.prefix(200))")
    }

    /// A kept-alive connection that asks nothing more after its answer is closed at the request
    /// deadline (10 s after the answer), not held for the scraper's next round (Docs/operations.md
    /// §Metrics).
    @Test func aKeptAliveConnectionThatGoesQuietIsClosed() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let (agent, _, port) = try Self.metricsAgent(cli)
        defer { agent.stop() }
        #expect(Self.serving(port))
        // Read timeout 20 s: the deadline's close comes before it, the 30 s idle timeout's after.
        let quiet = try #require(RawSocket(tcpPort: port, timeout: 20))
        #expect(quiet.send(Array("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n".utf8)))
        let everything = quiet.readUntilClosed()
        #expect(everything != nil, "still open 20 s after its answer")
        #expect(String(decoding: everything ?? [], as: UTF8.self).hasPrefix("HTTP/1.1 200 OK"), "answered before it was closed")
    }

    /// 16 clients at 16 addresses each trickle a request header a byte at a time and reconnect
    /// when closed. That kept every scraper out (all 16 connections were taken, and each byte
    /// restarted the idle timer). A scrape now gets its answer: it takes the slot of a trickler.
    /// And a trickler is closed at the request deadline, however steadily it trickles.
    @Test func tricklingClientsDoNotKeepAScraperOut() throws {
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let (agent, _, port) = try Self.metricsAgent(cli)
        defer { agent.stop() }
        #expect(Self.serving(port))

        let stop = Atomic<Bool>(false)
        let held = Atomic<Int>(0)
        let finished = Atomic<Bool>(false)
        let trickler = Thread {
            defer { finished.store(true, ordering: .relaxed) }
            var sockets: [Int: RawSocket] = [:]
            while !stop.load(ordering: .relaxed) {
                for i in 0..<16 {
                    if let s = sockets[i], s.send([0x61]) { continue }
                    sockets[i] = RawSocket(tcpPort: port, timeout: 1, from: "127.0.3.\(i + 2)")
                    _ = sockets[i]?.send(Array("GET /metrics HTTP/1.1\r\nX-Slow: ".utf8))
                }
                held.store(sockets.count, ordering: .relaxed)
                Thread.sleep(forTimeInterval: 0.5)
            }
        }
        trickler.start()
        defer { stop.store(true, ordering: .relaxed) }
        #expect(Readiness.wait { held.load(ordering: .relaxed) == 16 })
        let scrape = try Self.http("GET", "/metrics", port: port)
        #expect(scrape.hasPrefix("HTTP/1.1 200 OK"), "\(scrape.prefix(200))")

        // A trickler on its own (so no newcomer pushes it out): closed at the deadline though it
        // never pauses.
        stop.store(true, ordering: .relaxed)
        #expect(Readiness.wait { finished.load(ordering: .relaxed) })
        #expect(Self.serving(port))
        let lone = try #require(RawSocket(tcpPort: port, timeout: 1, from: "127.0.4.2"))
        _ = lone.send(Array("GET /metrics HTTP/1.1\r\nX-Slow: ".utf8))
        var closed = false
        for _ in 0..<60 where !closed {
            Thread.sleep(forTimeInterval: 0.5)
            closed = !lone.send([0x61])
        }
        #expect(closed, "a connection trickling its header for 30 s was not closed")
    }
}
