import Foundation

/// How to run an embedded `serf agent`. Everything it writes (snapshot, log, pid file, secrets
/// file) lives under `directory`.
public struct EmbeddedSerfConfiguration: Sendable {
    /// Path to the `serf` binary.
    public var executable: String
    /// Unique in the cluster (Serf refuses duplicates).
    public var nodeName: String
    /// Holds the snapshot, the agent's log, its pid file and the secrets file.
    public var directory: String
    /// Gossip address (TCP and UDP).
    public var bindHost: String
    /// Gossip port.
    public var bindPort: Int
    /// RPC port, always on 127.0.0.1: the RPC has no transport security.
    public var rpcPort: Int
    /// The KVGossip sync port, announced as the `kvg` tag.
    public var syncPort: Int
    /// Extra tags (the `kvg` tag is added from `syncPort`).
    public var tags: [String: String]
    /// `ip:port` of nodes to join (`-retry-join`: retried every 5 s until one answers, so a host
    /// whose peers are down still starts).
    public var join: [String]
    /// `lan` (default), `wan` or `local` (halves the gossip interval: faster on one host).
    public var profile: String?
    /// Gossip encryption key (base64, 16/24/32 bytes). Written to a 0600 config file rather than
    /// the command line, which every local user can read.
    public var encryptKey: String?
    /// Key clients must send with `auth` (kept in the same file).
    public var rpcAuthKey: String?
    /// Rejoin the snapshot's peers even after a graceful leave (`-rejoin`): a restarted host should
    /// come back without an explicit join.
    public var rejoinAfterLeave: Bool
    /// How long a start waits for the RPC to answer.
    public var startTimeout: Duration
    /// How long a graceful stop waits before SIGKILL (the leave takes about 3 s).
    public var stopTimeout: Duration
    /// Delay between restarts of a crashed agent.
    public var restartBackoff: SerfBackoff
    /// A run longer than this resets the restart backoff.
    public var stableAfter: Duration

    public init(
        executable: String = EmbeddedSerfConfiguration.findExecutable() ?? "/usr/bin/serf",
        nodeName: String, directory: String, bindHost: String = "127.0.0.1", bindPort: Int = 7946,
        rpcPort: Int = 7373, syncPort: Int, tags: [String: String] = [:], join: [String] = [],
        profile: String? = nil, encryptKey: String? = nil, rpcAuthKey: String? = nil, rejoinAfterLeave: Bool = true,
        startTimeout: Duration = .seconds(30), stopTimeout: Duration = .seconds(10),
        restartBackoff: SerfBackoff = SerfBackoff(initial: .milliseconds(200), maximum: .seconds(10)),
        stableAfter: Duration = .seconds(30)
    ) {
        self.executable = executable
        self.nodeName = nodeName
        self.directory = directory
        self.bindHost = bindHost
        self.bindPort = bindPort
        self.rpcPort = rpcPort
        self.syncPort = syncPort
        self.tags = tags
        self.join = join
        self.profile = profile
        self.encryptKey = encryptKey
        self.rpcAuthKey = rpcAuthKey
        self.rejoinAfterLeave = rejoinAfterLeave
        self.startTimeout = startTimeout
        self.stopTimeout = stopTimeout
        self.restartBackoff = restartBackoff
        self.stableAfter = stableAfter
    }

    /// Where the agent's RPC listens.
    public var rpcAddress: SerfRPCAddress { SerfRPCAddress(host: "127.0.0.1", port: rpcPort) }

    var snapshotPath: String { directory + "/serf.snapshot" }
    var logPath: String { directory + "/serf.log" }
    var pidPath: String { directory + "/serf.pid" }
    var secretsPath: String { directory + "/serf-secrets.json" }
    var tuningPath: String { directory + "/serf-tuning.json" }
    var hasSecrets: Bool { encryptKey != nil || rpcAuthKey != nil }

    /// The `serf agent` command line.
    var arguments: [String] {
        let bind = bindHost.contains(":") ? "[\(bindHost)]:\(bindPort)" : "\(bindHost):\(bindPort)"
        var args = [
            "agent", "-node=\(nodeName)", "-bind=\(bind)", "-rpc-addr=\(rpcAddress)",
            "-snapshot=\(snapshotPath)", "-tag", "\(Membership.defaultTag)=\(syncPort)",
        ]
        for (key, value) in tags.sorted(by: { $0.key < $1.key }) where key != Membership.defaultTag {
            args += ["-tag", "\(key)=\(value)"]
        }
        // -retry-join, not -join: a host that boots while its peers are down must still come up
        // (with its mount) and find them later, instead of exiting and restart-looping.
        args += join.map { "-retry-join=\($0)" }
        if !join.isEmpty { args.append("-retry-interval=5s") }
        if let profile { args.append("-profile=\(profile)") }
        if rejoinAfterLeave { args.append("-rejoin") }
        args.append("-config-file=\(tuningPath)")
        if hasSecrets { args.append("-config-file=\(secretsPath)") }
        return args
    }

    /// Settings without a command-line flag. A member that failed (a crash, or the other side of a
    /// partition) is tried again every `reconnect_interval`; Serf's default of 30 s decided how long
    /// a healed partition stayed split (measured: 26 s of a 28 s heal at 20 hosts), so 10 s.
    var tuningJSON: String { "{\"reconnect_interval\": \"10s\"}\n" }

    /// The secrets file's JSON (`encrypt_key`, `rpc_auth`).
    var secretsJSON: String {
        var fields: [String] = []
        if let encryptKey { fields.append("\"encrypt_key\": \(jsonString(encryptKey))") }
        if let rpcAuthKey { fields.append("\"rpc_auth\": \(jsonString(rpcAuthKey))") }
        return "{" + fields.joined(separator: ", ") + "}\n"
    }

    private func jsonString(_ text: String) -> String {
        let data = try? JSONSerialization.data(withJSONObject: [text], options: [.fragmentsAllowed])
        let array = data.flatMap { String(data: $0, encoding: .utf8) } ?? "[\"\"]"
        return String(array.dropFirst().dropLast())
    }

    /// The first executable `serf` on PATH.
    public static func findExecutable(named name: String = "serf") -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}
