import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Runs and supervises this host's own `serf agent`.
///
/// `start()` spawns the agent and returns once its RPC answers a handshake. A crashed agent is
/// restarted with backoff (each exit is logged). `stop()` sends SIGINT, which makes Serf leave the
/// cluster gracefully, and SIGKILLs it if it has not exited by `stopTimeout`. Every signal goes to
/// the PID this object spawned and has not yet reaped. An exit not asked for through `stop()` is a
/// crash, even a clean one after an RPC `leave`.
public final class EmbeddedSerf: Sendable {
    /// The settings the agent runs with (fixed for its lifetime, restarts included).
    public let configuration: EmbeddedSerfConfiguration
    private let logger: Logger
    private let state = Mutex(State())

    private struct State {
        var child: ChildProcess?
        var supervisor: Task<Void, Never>?
        var started = false
        var stopping = false
        var restarts = 0
        var failure: String?
    }

    /// Prepares a supervisor; nothing runs until `start()`. The owner must call `stop()`: a running
    /// supervisor keeps itself alive.
    public init(_ configuration: EmbeddedSerfConfiguration, logger: Logger = Logger(label: "kvgossip.serf.embedded")) {
        self.configuration = configuration
        self.logger = logger
    }

    /// The RPC address clients should use.
    public var rpcAddress: SerfRPCAddress { configuration.rpcAddress }

    /// The running agent's PID, nil between a crash and its restart.
    public var pid: Int32? {
        state.withLock { s in s.child.flatMap { $0.isRunning ? $0.pid : nil } }
    }

    /// How many times the agent was restarted after dying.
    public var restartCount: Int { state.withLock { $0.restarts } }

    /// Why the agent is down for good (it quit for a reason a restart cannot fix), nil otherwise.
    public var failure: String? { state.withLock { $0.failure } }

    /// Starts the agent and waits until its RPC answers. Throws (with the end of the agent's log)
    /// if it exits or stays silent; the supervisor only takes over after a successful start.
    @discardableResult
    public func start() async throws -> SerfRPCAddress {
        try state.withLock { s in
            guard !s.started else { throw SerfError.process("already started") }
            s.started = true
        }
        let child: ChildProcess
        do {
            try prepareDirectory()
            await killStaleAgent()
            child = try spawn()
        } catch {
            state.withLock { $0.started = false }
            throw error
        }
        state.withLock { $0.child = child }
        writePidFile(child)
        do {
            try await waitUntilReady(child)
        } catch {
            child.signal(SIGKILL)
            _ = await child.waitForExit()
            removePidFile()
            state.withLock { s in
                s.child = nil
                s.started = false
            }
            throw error
        }
        // The supervisor is installed under the same lock stop() reads, so a stop() racing this start
        // either sees the supervisor or leaves us to kill the child here.
        let supervising = state.withLock { s -> Bool in
            guard !s.stopping else { return false }
            s.supervisor = Task { await self.supervise(child) }
            return true
        }
        guard supervising else {
            child.signal(SIGKILL)
            _ = await child.waitForExit()
            removePidFile()
            throw SerfError.process("stopped while starting")
        }
        logger.info("serf agent started", metadata: ["pid": "\(child.pid)", "rpc": "\(rpcAddress)"])
        return rpcAddress
    }

    /// Stops the agent and waits until it has exited; restarts are off from here on.
    ///
    /// - Parameter gracefully: true sends SIGINT, so Serf leaves the cluster (peers see `left` at
    ///   once; the process exits about 3 s later). false sends SIGTERM, a shutdown without leave
    ///   (peers notice a failure after ~5 s). Either way SIGKILL follows after `stopTimeout`.
    public func stop(gracefully: Bool = true) async {
        let (child, supervisor) = state.withLock { s in
            s.stopping = true
            return (s.child, s.supervisor)
        }
        guard let child else {
            await supervisor?.value
            return
        }
        child.signal(gracefully ? SIGINT : SIGTERM)
        let timeout = configuration.stopTimeout
        let killer = Task {
            try await Task.sleep(for: timeout)
            child.signal(SIGKILL)
        }
        let status = await child.waitForExit()
        killer.cancel()
        await supervisor?.value
        removePidFile()
        logger.info("serf agent stopped", metadata: ["pid": "\(child.pid)", "status": "\(status)"])
    }

    // MARK: - Supervision

    /// Waits for the agent to die and restarts it, until `stop()`. Never cancelled: it must always
    /// reap the child it watches.
    private func supervise(_ first: ChildProcess) async {
        var child = first
        var attempt = 0
        while true {
            let startedAt = ContinuousClock.now
            let status = await child.waitForExit()
            if state.withLock({ $0.stopping }) { return }
            removePidFile()
            if let diagnosis = SerfExitDiagnosis(log: logText(since: child.logOffset)), !diagnosis.restartHelps {
                let message = diagnosis.message(nodeName: configuration.nodeName)
                state.withLock { $0.failure = message }
                logger.error("serf agent quit and is not restarted", metadata: [
                    "pid": "\(child.pid)", "status": "\(status)", "reason": "\(message)", "log": "\(configuration.logPath)",
                ])
                return
            }
            if ContinuousClock.now - startedAt > configuration.stableAfter { attempt = 0 }
            while true {
                let delay = configuration.restartBackoff.delay(attempt: attempt)
                attempt += 1
                logger.error(
                    "serf agent exited; restarting",
                    metadata: ["pid": "\(child.pid)", "status": "\(status)", "delay": "\(delay)", "log": "\(configuration.logPath)"])
                guard await sleepUnlessStopping(delay) else { return }
                do {
                    let next = try spawn()
                    let abandoned = state.withLock { s in
                        if s.stopping { return true }
                        s.child = next
                        s.restarts += 1
                        return false
                    }
                    if abandoned {
                        // stop() already ran and saw no child: this one never joined anything.
                        next.signal(SIGKILL)
                        _ = await next.waitForExit()
                        return
                    }
                    writePidFile(next)
                    logger.info("serf agent restarted", metadata: ["pid": "\(next.pid)"])
                    child = next
                    break
                } catch {
                    logger.error("cannot restart serf agent", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// Sleeps in short slices so a stop during the backoff is not delayed; false when stopping.
    private func sleepUnlessStopping(_ delay: Duration) async -> Bool {
        let deadline = ContinuousClock.now + delay
        while ContinuousClock.now < deadline {
            if state.withLock({ $0.stopping }) { return false }
            try? await Task.sleep(for: min(.milliseconds(50), deadline - ContinuousClock.now))
        }
        return !state.withLock { $0.stopping }
    }

    // MARK: - Process

    private func spawn() throws(SerfError) -> ChildProcess {
        try ChildProcess.spawn(executable: configuration.executable, arguments: configuration.arguments, logPath: configuration.logPath)
    }

    /// Written once the child is recorded (`pid` names it), never before, so whoever finds the file
    /// finds the supervisor knowing that child too. (The child is recorded right after it is
    /// spawned, long before a `serf agent` answers RPC.)
    private func writePidFile(_ child: ChildProcess) {
        try? "\(child.pid)\n".write(toFile: configuration.pidPath, atomically: true, encoding: .utf8)
    }

    private func waitUntilReady(_ child: ChildProcess) async throws {
        let deadline = ContinuousClock.now + configuration.startTimeout
        var lastError: any Error = SerfError.process("no answer yet")
        // Each attempt waits longer for the handshake's answer: on a busy host a slow answer is
        // still an answer, and a fixed short timeout could miss every one of them.
        var answerTimeout = Duration.seconds(1)
        while ContinuousClock.now < deadline {
            if let status = child.poll() {
                throw SerfError.process("exited during start (\(status)):\n\(logTail())")
            }
            defer { answerTimeout = min(answerTimeout * 2, .seconds(8)) }
            do {
                let client = try await SerfRPCClient.connect(
                    to: rpcAddress, authKey: configuration.rpcAuthKey, requestTimeout: answerTimeout)
                await client.close()
                return
            } catch {
                lastError = error
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw SerfError.process("RPC at \(rpcAddress) did not answer within \(configuration.startTimeout): \(lastError)\n\(logTail())")
    }

    private func prepareDirectory() throws {
        let files = FileManager.default
        try files.createDirectory(atPath: configuration.directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try files.setAttributes([.posixPermissions: 0o700], ofItemAtPath: configuration.directory)
        try configuration.tuningJSON.write(toFile: configuration.tuningPath, atomically: true, encoding: .utf8)
        if configuration.hasSecrets {
            let path = configuration.secretsPath
            _ = files.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
            try files.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
            try configuration.secretsJSON.write(toFile: path, atomically: false, encoding: .utf8)
        } else {
            try? files.removeItem(atPath: configuration.secretsPath)
        }
    }

    /// An agent left running by a previous process of ours that crashed holds the ports; it is ours
    /// only if its command line names this directory's snapshot, so nothing else is ever killed.
    private func killStaleAgent() async {
        guard let text = try? String(contentsOfFile: configuration.pidPath, encoding: .utf8),
            let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0,
            let cmdline = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))
        else { return }
        let arguments = cmdline.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        guard arguments.contains("agent"), arguments.contains("-snapshot=\(configuration.snapshotPath)") else { return }
        logger.warning("killing a serf agent left over from an earlier run", metadata: ["pid": "\(pid)"])
        kill(pid, SIGKILL)
        for _ in 0 ..< 100 where FileManager.default.fileExists(atPath: "/proc/\(pid)") {
            try? await Task.sleep(for: .milliseconds(20))
        }
        removePidFile()
    }

    private func removePidFile() {
        try? FileManager.default.removeItem(atPath: configuration.pidPath)
    }

    /// What the log holds from `offset` on (its last 64 KiB at most).
    private func logText(since offset: Int) -> String {
        guard let handle = FileHandle(forReadingAtPath: configuration.logPath) else { return "" }
        defer { try? handle.close() }
        let end = (try? handle.seekToEnd()).map(Int.init) ?? 0
        let start = max(offset, end - 65_536)
        guard start < end, (try? handle.seek(toOffset: UInt64(start))) != nil else { return "" }
        return String(decoding: (try? handle.readToEnd()) ?? Data(), as: UTF8.self)
    }

    private func logTail(bytes: Int = 2000) -> String {
        guard let data = FileManager.default.contents(atPath: configuration.logPath) else { return "(no log)" }
        return String(decoding: data.suffix(bytes), as: UTF8.self)
    }
}
