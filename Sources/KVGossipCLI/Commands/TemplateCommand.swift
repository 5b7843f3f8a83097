import ArgumentParser
import Foundation
import KVGossipClient
import KVGossipControl
import KVGossipCore
import KVGossipTemplate
import Logging

struct TemplateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "template",
        abstract: "Render files from the tree, re-render them when it changes, and run a command after.",
        discussion: """
            Templates are Stencil templates (Docs/templates.md). Helpers:

              {{ "/app/db/url"|key }}       the value; the render fails when the
                                            key has none
              {{ "/app/db/url"|key:"x" }}   the value, or "x" when it has none
              {% if "/app/x"|exists %}      whether the key holds a value
              {{ "/app/x"|signer }}         the public key that signed the value
                                            (a default may follow, as for key)
              {% for e in "/svc"|under %}   each key below a prefix, key order:
                {{ e.key }} {{ e.path }}    full key; key below the prefix
                {{ e.name }} {{ e.value }}  last part of the key; the value
                {{ e.signer }} {{ e.time }} who signed it, and when
              {% endfor %}
              {% for e in "/svc/*/addr"|match %}  keys a pattern matches
              |split:","  |trim  |lines  |json  |first  |last  |join:","
              {% with "/app/cfg"|key|json as c %}{{ c.port }}{% endwith %}

            A deleted key has no value. `.last` is refused (Stencil stops on \
            an empty list): write |last. Values are data, never template text.

            Following the tree: the command subscribes, through the agent, to \
            every key and prefix the templates read (found by rendering, so \
            computed keys count too); it never polls. After a change it waits \
            until the tree is quiet for MIN, but never longer than MAX after \
            the first change (--wait MIN[:MAX]; default 100ms:2s; MAX is 4×MIN \
            when left out). Then it reads one snapshot: every value the \
            templates read, read by the agent at one moment, so no output \
            mixes values from before and after one change (a write, a batch \
            from a peer, a revocation). A snapshot equal to the last one \
            rendered is not rendered again: a reconnect or an agent restart \
            renders nothing and runs nothing.

            Output: a file is written only when its bytes change: to a \
            temporary file in the same directory, synced, given --mode and \
            --owner, checked, then renamed over the old one. With several \
            templates, all render or nothing is written. A render fails, and \
            every old file stays, when a key read without a default has no \
            value, when a template is wrong, or when a check command exits \
            non-zero. A check runs with the staged output's path in \
            $KVGOSSIP_STAGED and the destination in $KVGOSSIP_DESTINATION, \
            e.g. --check 'nginx -t -q -c "$KVGOSSIP_STAGED"'. The reason goes \
            to the log and to the status file.

            The command (--exec) runs once per cycle that replaced at least \
            one file, after all of them were replaced, with the changed paths \
            in $KVGOSSIP_CHANGED (one per line). Commands run with /bin/sh -c \
            and are stopped, with their process group, after \
            --command-timeout.

            --wait-synced: no render while a key the templates use is dirty \
            (pending-push, pending-fetch, unsynced, or not yet confirmed by a \
            connected agent).

            A template set file (--config; the unit \
            kvgossip-template@NAME.service runs \
            /etc/kvgossip/templates/NAME.json) has the fields: control (a \
            list), root, templates (each: source, destination, mode, owner, \
            group, check), exec, wait, waitSynced, commandTimeout, \
            statusFile, logLevel. Its relative paths are read from its directory. Flags \
            override it; --template adds templates, and --mode, --owner and \
            --check apply to those.

            Exit status: 0 after SIGTERM or SIGINT; 1 when a template cannot \
            be rendered at start (even without values), or, with --once, when \
            the render, a check or the command failed.
            """)

    @Option(help: ArgumentHelp("A template set file (JSON); flags override it.", valueName: "FILE"))
    var config: String?
    @Option(name: .customLong("template"), help: ArgumentHelp(
        "A template and its output (repeatable). Relative paths are read from the current directory.", valueName: "SOURCE:DESTINATION"))
    var templates: [String] = []
    @Option(help: ArgumentHelp("Run after a render replaced files, once, after all of them.", valueName: "COMMAND"))
    var exec: String?
    @Option(help: ArgumentHelp("Run on each staged output of --template; non-zero keeps the old file.", valueName: "COMMAND"))
    var check: String?
    @Option(help: ArgumentHelp("Permission bits of --template outputs, octal. Default: 0644.", valueName: "OCTAL"))
    var mode: String?
    @Option(help: ArgumentHelp("Owner of --template outputs: a user name or uid, optionally :GROUP.", valueName: "USER[:GROUP]"))
    var owner: String?
    @Option(help: ArgumentHelp("Quiet time before a render, and the longest a change waits. Default: 100ms:2s.", valueName: "MIN[:MAX]"))
    var wait: String?
    @Flag(name: .customLong("wait-synced"), help: "Do not render while a key the templates use is dirty.")
    var waitSynced = false
    @Flag(help: "Render once from a consistent snapshot (and run the command if files changed), then exit. Waits for an agent to answer.")
    var once = false
    @Option(name: .customLong("command-timeout"), help: ArgumentHelp("How long --check and --exec may run. Default: 30s.", valueName: "DURATION"))
    var commandTimeout: String?
    @Option(name: .customLong("status-file"), help: ArgumentHelp(
        "Write counters (snapshots, renders, installs, commands, failures) and the last error here as JSON after each cycle.", valueName: "FILE"))
    var statusFile: String?
    @Option(help: ArgumentHelp(
        "An agent's control socket or HOST:PORT (repeatable, tried in order on failure). Default: $KVGOSSIP_CONTROL, else \(ControlEndpoint.defaultSocketPath).",
        valueName: "PATH"))
    var control: [String] = []
    @Option(help: ArgumentHelp(
        "The cluster's root public key: every record read is verified against it. Needed with a HOST:PORT --control; without it the root is learned from the local socket.",
        valueName: "PUBKEY"))
    var root: String?
    @Option(name: .customLong("log-level"), help: ArgumentHelp("trace, debug, info, notice, warning, error. Default: info.", valueName: "LEVEL"))
    var logLevel: String?

    func run() async throws {
        let settings = try settings()
        let level = Logger.Level(rawValue: settings.logLevel ?? "info") ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let job = try TemplateJobLoader.job(settings, once: once)
        var options = KVClientOptions()
        options.logger = Logger(label: "kvgossip.template.client")
        options.cluster = job.root
        // A TCP agent: the client's key and grants come from the environment, and the root from
        // there too when the set names none (Docs/templates.md).
        if let tcp = job.endpoints.map(ControlEndpoint.init(parsing:)).first(where: { if case .tcp = $0 { true } else { false } }) {
            let proof = try RemoteClientFiles(root: job.root?.text).load(for: tcp)
            options.identity = ClientIdentity(signingKey: proof.key, proofs: proof.grants)
            options.cluster = proof.root
        }
        let client = KVClient(addresses: job.endpoints, options: options)
        let runner = TemplateRunner(job: job, client: client, logger: Logger(label: "kvgossip.template"))
        let shutdown = ShutdownSignal()
        let watcher = Task {
            _ = await shutdown.wait()
            runner.stop()
        }
        let code = await runner.run()
        watcher.cancel()
        if code != 0 { throw ExitCode(code) }
    }

    /// The file's settings overridden by the flags.
    private func settings() throws -> TemplateSetConfig {
        var file = TemplateSetConfig()
        if let config {
            guard let data = FileManager.default.contents(atPath: config) else { throw CLIError("cannot read \(config)") }
            let directory = StagedFile.split(config).directory
            file = try TemplateSetConfig.decode(data, path: config).resolvingPaths(against: String(directory.dropLast()))
        }
        var flags = TemplateSetConfig()
        let (user, group) = try owner.map(TemplateJobLoader.splitOwner) ?? (nil, nil)
        flags.templates = try templates.map { text in
            guard let colon = text.lastIndex(of: ":"), colon != text.startIndex, text.index(after: colon) != text.endIndex else {
                throw ValidationError("--template: expected SOURCE:DESTINATION, got \(text)")
            }
            return TemplateSpec(
                source: String(text[..<colon]), destination: String(text[text.index(after: colon)...]), mode: mode, owner: user, group: group,
                check: check)
        }
        flags.control = control
        flags.root = root
        flags.exec = exec
        flags.wait = wait
        flags.waitSynced = waitSynced ? true : nil
        flags.commandTimeout = commandTimeout
        flags.statusFile = statusFile
        flags.logLevel = logLevel
        return file.overridden(by: flags)
    }
}

/// Checks a template set's settings and turns them into a ``TemplateJob``: templates read and
/// parsed, owners looked up, defaults applied. Every problem is reported before anything runs.
enum TemplateJobLoader {
    static func job(_ settings: TemplateSetConfig, once: Bool) throws -> TemplateJob {
        var problems = settings.problems()
        if let level = settings.logLevel, Logger.Level(rawValue: level) == nil { problems.append("logLevel: unknown level \(level)") }
        var sources: [TemplateSource] = []
        var outputs: [TemplateJob.Output] = []
        for spec in settings.templates ?? [] {
            if let data = FileManager.default.contents(atPath: spec.source), let text = String(data: data, encoding: .utf8) {
                sources.append(TemplateSource(name: spec.source, text: text))
            } else {
                problems.append("cannot read the template \(spec.source)")
            }
            do {
                outputs.append(TemplateJob.Output(
                    spec: spec, mode: mode_t(try spec.permissions), owner: try spec.owner.map(user), group: try spec.group.map(group)))
            } catch {
                problems.append("\(error)")
            }
        }
        let renderer: TemplateRenderer?
        do { renderer = try TemplateRenderer(sources) } catch {
            problems.append(error.description)
            renderer = nil
        }
        let fallback = ProcessInfo.processInfo.environment["KVGOSSIP_CONTROL"] ?? ControlEndpoint.defaultSocketPath
        let endpoints = settings.control.flatMap { $0.isEmpty ? nil : $0 } ?? [fallback]
        var root: PublicKey?
        if let text = settings.root ?? ProcessInfo.processInfo.environment["KVGOSSIP_ROOT"] {
            do { root = try PublicKey(text: text) } catch { problems.append("root: \(error.description)") }
        } else if let tcp = endpoints.first(where: { if case .tcp = ControlEndpoint(parsing: $0) { true } else { false } }) {
            // The client would refuse every read (no-root); say so before anything runs.
            problems.append("root: \(tcp) is reached over TCP, so the cluster's root key is needed to verify what it sends (--root, \"root\" or $KVGOSSIP_ROOT)")
        }
        guard problems.isEmpty, let renderer else { throw CLIError("the template set is not usable:\n  " + problems.joined(separator: "\n  ")) }
        return TemplateJob(
            outputs: outputs, renderer: renderer, exec: settings.exec,
            window: try WaitWindow.parse(settings.wait ?? TemplateSetConfig.defaultWait),
            waitSynced: settings.waitSynced ?? false,
            commandTimeout: WaitWindow.duration(Substring(settings.commandTimeout ?? TemplateSetConfig.defaultCommandTimeout))!,
            statusFile: settings.statusFile, endpoints: endpoints, root: root, once: once)
    }

    /// `USER[:GROUP]` as given to --owner.
    static func splitOwner(_ text: String) throws -> (String?, String?) {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard !parts[0].isEmpty || parts.count == 2 else { throw ValidationError("--owner: expected USER[:GROUP], got \(text)") }
        return (parts[0].isEmpty ? nil : parts[0], parts.count == 2 && !parts[1].isEmpty ? parts[1] : nil)
    }

    static func user(_ name: String) throws -> uid_t {
        if let uid = uid_t(name) { return uid }
        guard let entry = getpwnam(name) else { throw CLIError("owner: no user named \(name)") }
        return entry.pointee.pw_uid
    }

    static func group(_ name: String) throws -> gid_t {
        if let gid = gid_t(name) { return gid }
        guard let entry = getgrnam(name) else { throw CLIError("group: no group named \(name)") }
        return entry.pointee.gr_gid
    }
}
