import Foundation
import KVGossipTestSupport
import KVGossipTestTraits
import Testing

/// A real nginx (Debian's package), configured from a template over the tree, with its own prefix
/// and config in the test's directory (never /etc/nginx), on loopback. Two tiny upstream servers
/// (python3 -m http.server) answer with their names; moving the upstream key from one to the other
/// makes `kvgossip template` render, check (`nginx -t`), and reload nginx, which then proxies to the
/// new upstream.
@Suite(.serialized, .integration) struct TemplateNginxTests {
    static let nginx = "/usr/sbin/nginx"

    /// A process of this test, stopped by PID when the test ends, pass or fail.
    final class Child: @unchecked Sendable {
        let process = Process()
        let signal: Int32

        /// `signal` stops it: the upstreams get SIGKILL, since they inherit this test process's
        /// ignored SIGTERM and hold nothing worth a clean exit.
        init(_ executable: String, _ arguments: [String], in directory: URL, log: String, stopWith signal: Int32 = SIGTERM) throws {
            self.signal = signal
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            process.currentDirectoryURL = directory
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            let handle = FileHandle(forWritingAtPath: log)!
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
        }

        deinit { process.stop(signal: signal, grace: 10) }
    }

    /// What curl gets from `port` on loopback, or nil.
    static func curl(_ port: Int) -> String? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        p.arguments = ["-s", "--max-time", "2", "http://127.0.0.1:\(port)/"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return p.terminationStatus == 0 ? String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : nil
    }

    static let template = """
        # Rendered by kvgossip template from /svc/web/* (the upstreams) and /svc/web-port.
        daemon off;
        user root;
        pid {{ "/svc/nginx-prefix"|key }}/nginx.pid;
        error_log {{ "/svc/nginx-prefix"|key }}/error.log;
        events { worker_connections 64; }
        http {
            access_log off;
            client_body_temp_path {{ "/svc/nginx-prefix"|key }}/tmp/body;
            proxy_temp_path {{ "/svc/nginx-prefix"|key }}/tmp/proxy;
            fastcgi_temp_path {{ "/svc/nginx-prefix"|key }}/tmp/fastcgi;
            uwsgi_temp_path {{ "/svc/nginx-prefix"|key }}/tmp/uwsgi;
            scgi_temp_path {{ "/svc/nginx-prefix"|key }}/tmp/scgi;
            upstream web {
        {% for e in "/svc/web"|under %}        server {{ e.value|trim }};
        {% endfor %}    }
            server {
                listen 127.0.0.1:{{ "/svc/web-port"|key|trim }};
                location / { proxy_pass http://web; }
            }
        }

        """

    @Test func nginxIsReconfiguredFromTheTreeAndServesTheNewUpstream() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.nginx) else {
            Issue.record("nginx is not installed (Scripts/install-deps installs it)")
            return
        }
        let cli = try CLIProcess()
        defer { cli.cleanUp() }
        let prefix = cli.path("nginx")
        for dir in ["nginx/tmp", "upstream-a", "upstream-b"] {
            try FileManager.default.createDirectory(atPath: cli.path(dir), withIntermediateDirectories: true)
        }
        try cli.write("upstream-a/index.html", "upstream-a\n")
        try cli.write("upstream-b/index.html", "upstream-b\n")
        let (portA, portB, portFront) = (LoopbackPort.free(), LoopbackPort.free(), LoopbackPort.free())
        let upstreamA = try Child("/usr/bin/python3", ["-m", "http.server", "\(portA)", "--bind", "127.0.0.1", "--directory", cli.path("upstream-a")],
                                  in: cli.directory, log: cli.path("upstream-a.log"), stopWith: SIGKILL)
        let upstreamB = try Child("/usr/bin/python3", ["-m", "http.server", "\(portB)", "--bind", "127.0.0.1", "--directory", cli.path("upstream-b")],
                                  in: cli.directory, log: cli.path("upstream-b.log"), stopWith: SIGKILL)
        defer { withExtendedLifetime((upstreamA, upstreamB)) {} }
        #expect(Readiness.wait { Self.curl(portA) == "upstream-a" && Self.curl(portB) == "upstream-b" })

        let root = try cli.keygen("root.key")
        let agent = try AgentProcess(cli: cli, root: root, extraArgs: ["--key", "root.key"])
        try agent.mint("/svc/nginx-prefix", prefix)
        try agent.mint("/svc/web-port", "\(portFront)\n")
        try agent.mint("/svc/web/a", "127.0.0.1:\(portA)")
        try cli.write("nginx.conf.tmpl", Self.template)
        let config = prefix + "/nginx.conf"
        let common = [
            "--control", agent.socket, "--template", "nginx.conf.tmpl:\(config)",
            "--check", #"\#(Self.nginx) -t -q -e \#(prefix)/error.log -p \#(prefix)/ -c "$KVGOSSIP_STAGED""#,
        ]

        // First render with --once, so nginx has a configuration to start with.
        let first = try cli.run(["template", "--once"] + common)
        #expect(first.status == 0, "\(first.stderr)")
        let nginx = try Child(Self.nginx, ["-e", prefix + "/error.log", "-p", prefix + "/", "-c", config], in: cli.directory, log: cli.path("nginx.log"))
        defer { withExtendedLifetime(nginx) {} }
        #expect(Readiness.wait { Self.curl(portFront) == "upstream-a" }, "nginx: \(cli.read("nginx.log") ?? "") \(cli.read("nginx/error.log") ?? "")")

        // The long-running form reloads nginx when the upstream moves.
        let tool = try TemplateProcess(cli: cli, arguments: common + ["--exec", "\(Self.nginx) -s reload -e \(prefix)/error.log -p \(prefix)/ -c \(config)"])
        defer { tool.stop() }
        #expect(Readiness.wait { (tool.status["dependencies"] as? [String])?.contains("/svc/web/**") == true })
        #expect(tool.waitFor("renders", atLeast: 2))
        #expect(tool.count("commands") == 0, "the file already held these bytes: no reload")

        // B joins, then A leaves: every state on the way is a valid upstream list.
        try agent.mint("/svc/web/b", "127.0.0.1:\(portB)")
        #expect(try agent.run(["rm", "/svc/web/a"]).status == 0)
        #expect(Readiness.wait {
            let text = (try? String(contentsOfFile: config, encoding: .utf8)) ?? ""
            return text.contains("server 127.0.0.1:\(portB);") && !text.contains("server 127.0.0.1:\(portA);")
        }, "log:\n\(tool.log.suffix(3000))")
        // After the reload, every request goes to B (workers of the old configuration finish first).
        #expect(Readiness.wait { (0..<4).allSatisfy { _ in Self.curl(portFront) == "upstream-b" } },
                "\(cli.read("nginx/error.log") ?? "")")
        #expect(tool.count("commands") >= 1)
        #expect(tool.count("failures") == 0, "\(tool.status)")

        // An upstream list nginx refuses (no servers at all) fails its check: the running nginx keeps
        // serving from the old file.
        let commands = tool.count("commands")
        #expect(try agent.run(["rm", "/svc/web/b"]).status == 0)
        #expect(tool.waitFor("failures", atLeast: 1))
        #expect(tool.lastError?.contains("rejected") == true, "\(tool.status)")
        #expect(tool.count("commands") == commands)
        #expect(try String(contentsOfFile: config, encoding: .utf8).contains("server 127.0.0.1:\(portB);"))
        #expect(Self.curl(portFront) == "upstream-b")
    }
}
