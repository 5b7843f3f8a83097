import Foundation
import KVGossipClient
import KVGossipCore
import KVGossipTemplate
import Logging

/// A template set, its settings checked and resolved: what `kvgossip template` runs.
struct TemplateJob: Sendable {
    struct Output: Sendable {
        let spec: TemplateSpec
        let mode: mode_t
        let owner: uid_t?
        let group: gid_t?
    }

    let outputs: [Output]
    let renderer: TemplateRenderer
    let exec: String?
    let window: WaitWindow
    let waitSynced: Bool
    let commandTimeout: Duration
    let statusFile: String?
    let endpoints: [String]
    /// The root records are verified against; nil: learned from the local socket.
    let root: PublicKey?
    let once: Bool
}

/// Follows a template set's dependencies through the agent and runs render cycles
/// (Docs/templates.md §Render cycle). The decisions are KVGossipTemplate's; this shell reads
/// snapshots, files and clocks, writes files and runs commands.
///
/// Every wake-up is a signal: a list subscription's event, a dirtiness change (`--wait-synced`),
/// the wait window's deadline, or stop. Nothing polls.
actor TemplateRunner {
    enum Signal: Sendable { case changed, deadline, stop, gaveUp }

    /// How long `--once` waits for a cycle to settle before it gives up: an agent it cannot reach,
    /// or one that refuses it (another cluster's, or one that does not admit its key), must not
    /// keep a one-shot render waiting for ever.
    static let onceLimit: Duration = .seconds(60)

    private struct Follower<Subscription: Sendable> {
        let subscription: Subscription
        let task: Task<Void, Never>
    }

    let job: TemplateJob
    let client: KVClient
    let logger: Logger
    private var window: WaitWindow
    private var gate = RenderGate()
    private var lists: [Pattern: Follower<ListSubscription>] = [:]
    /// Key subscriptions kept for their dirtiness, with `--wait-synced` only.
    private var keys: [String: Follower<KeySubscription>] = [:]
    private var timer: Task<Void, Never>?
    private var status = TemplateStatus()
    private let signals: AsyncStream<Signal>
    private let signal: AsyncStream<Signal>.Continuation
    /// The first render is against nothing: it finds the dependencies, and a template that fails
    /// even then is wrong in itself.
    private var firstRender = true
    /// Set when the runner should end, with its exit code.
    private var exitCode: Int32?

    init(job: TemplateJob, client: KVClient, logger: Logger) {
        self.job = job
        self.client = client
        self.logger = logger
        window = job.window
        (signals, signal) = AsyncStream.makeStream(of: Signal.self)
    }

    /// Runs until ``stop()``, or in `--once` mode until one cycle settled. Returns the exit code.
    func run() async -> Int32 {
        signal.yield(.changed)
        let giveUp = job.once ? Task { [signal] in
            try? await Task.sleep(for: Self.onceLimit)
            if !Task.isCancelled { signal.yield(.gaveUp) }
        } : nil
        defer { giveUp?.cancel() }
        for await next in signals {
            switch next {
            case .stop: exitCode = exitCode ?? 0
            case .changed: window.noteChange(at: .now)
            case .deadline: break
            case .gaveUp:
                fail(
                    [status.lastError ?? "no usable answer from \(job.endpoints.joined(separator: ", ")) (the log names each connection attempt)"],
                    "nothing rendered within \(Self.onceLimit)")
                exitCode = 1
            }
            if exitCode == nil { await advance() }
            if exitCode != nil { break }
        }
        await shutdown()
        return exitCode ?? 0
    }

    nonisolated func stop() { signal.yield(.stop) }

    // MARK: The window

    private func advance() async {
        while exitCode == nil {
            switch window.decision(at: .now) {
            case .idle:
                return
            case .waitUntil(let due):
                timer?.cancel()
                let signal = self.signal
                timer = Task {
                    try? await Task.sleep(until: due, clock: .continuous)
                    if !Task.isCancelled { signal.yield(.deadline) }
                }
                return
            case .renderNow:
                // Changes that arrive from here on open a new window and get a render of their own.
                window.close()
                await cycle()
                writeStatus()
            }
        }
    }

    // MARK: One cycle

    private func cycle() async {
        // Each subscription's first answer on this connection came after the agent began sending
        // its changes: a commit after the snapshot below is sure to signal another cycle.
        guard lists.values.allSatisfy({ $0.subscription.isSynced }) else { return }
        let patterns = Set(lists.keys)
        // Taken before the request: the agent's read transaction starts later, so it holds every
        // write that had committed by this time.
        let asked = nowMs()
        let snapshot: Snapshot
        if patterns.isEmpty {
            snapshot = .empty
        } else {
            do {
                snapshot = Snapshot(patterns: patterns, answer: try await client.list(patterns: patterns.map(\.text)))
            } catch let error as KVClientError where error.reason == .unverifiedRecord {
                // Not the agent being away: it sent a record that is not the cluster's. Nothing
                // is rendered from it; a later change signals another cycle.
                fail(["\(error)"], "the agent sent a record that failed verification; the old files stay")
                if job.once { exitCode = 1 }
                return
            } catch {
                // A lost connection: the subscriptions' resync after the next one signals again.
                logger.warning("cannot read a snapshot; waiting for the agent", metadata: ["error": "\(error)"])
                status.lastError = "cannot read a snapshot: \(error)"
                return
            }
        }
        status.snapshots += 1
        status.snapshotAt = asked
        guard gate.needsRender(snapshot) else {
            logger.debug("snapshot unchanged; nothing to render")
            return
        }
        status.renders += 1
        let outcome = job.renderer.render(snapshot)
        if job.waitSynced, outcome.reads.uncovered.isEmpty { await followDirtiness(of: outcome.reads.usedKeys) }
        let current = job.outputs.map { FileManager.default.contents(atPath: $0.spec.destination) }
        let plan = CyclePlan.decide(
            outcome, current: current, waitSynced: job.waitSynced, dirtiness: keys.mapValues { $0.subscription.dirtiness })
        defer { firstRender = false }
        switch plan {
        case .fetch(let wanted):
            status.waitingFor = []
            logger.debug("fetching what the templates read", metadata: ["patterns": "\(wanted.map(\.text).sorted())"])
            await follow(wanted.union(patterns))
        case .hold(let blockers):
            status.waitingFor = blockers
            logger.notice("not rendering until the keys used are synced", metadata: ["dirty": "\(blockers.joined(separator: ", "))"])
        case .fail(let problems):
            gate.settle(snapshot)
            fail(problems, firstRender ? "the templates cannot be rendered" : "render failed; the old files stay")
            if firstRender { exitCode = 1 }
            await follow(outcome.reads.patterns)
        case .keep:
            gate.settle(snapshot)
            succeed()
            logger.debug("rendered; every file already holds these bytes")
            await follow(outcome.reads.patterns)
        case .install(let indices):
            guard case .rendered(let outputs, _) = outcome else { return }
            if await install(indices, outputs) { gate.settle(snapshot) }
            await follow(outcome.reads.patterns)
        }
        if job.once {
            switch plan {
            case .fail, .keep, .install: exitCode = exitCode ?? (status.lastError == nil ? 0 : 1)
            case .fetch, .hold: break
            }
        }
    }

    /// Stages every changed output, checks each, and only when all pass replaces them and runs the
    /// command once. Returns false when an I/O error leaves the cycle to be tried again.
    private func install(_ indices: [Int], _ outputs: [Data]) async -> Bool {
        var staged: [(index: Int, file: StagedFile)] = []
        var installed: [Int] = []
        // Whatever was staged and not installed goes, whichever way this returns.
        defer { for entry in staged where !installed.contains(entry.index) { entry.file.discard() } }
        do {
            for i in indices {
                let out = job.outputs[i]
                staged.append((i, try StagedFile(outputs[i], for: out.spec.destination, mode: out.mode, owner: out.owner, group: out.group)))
            }
        } catch {
            fail(["\(error)"], "cannot stage the new output; the old files stay")
            return false
        }
        for (i, file) in staged {
            guard let check = job.outputs[i].spec.check else { continue }
            let environment = ["KVGOSSIP_STAGED": file.temporary, "KVGOSSIP_DESTINATION": file.path]
            let result: ShellCommand.Outcome
            do { result = try await ShellCommand(line: check, environment: environment, timeout: job.commandTimeout).run() } catch {
                fail(["cannot run the check of \(file.path): \(error)"], "check failed; the old files stay")
                return false
            }
            if !result.succeeded {
                fail(["the check of \(file.path) rejected the new output (\(result))"], "check rejected the output; the old files stay")
                return true
            }
        }
        // A set is replaced whole or not at all: what would stop a rename halfway is looked for first.
        if let obstacle = staged.lazy.compactMap({ $0.file.obstacle() }).first {
            fail([obstacle], "cannot replace an output; the old files stay")
            return false
        }
        for (i, file) in staged {
            do {
                try file.install()
                installed.append(i)
            } catch {
                fail(["\(error)"], "cannot replace an output")
                break
            }
        }
        status.installs += installed.count
        let paths = installed.map { job.outputs[$0].spec.destination }
        logger.info("rendered and installed", metadata: ["files": "\(paths.joined(separator: ", "))"])
        guard installed.count == indices.count else { return false }
        succeed()
        if CyclePlan.runsCommand(exec: job.exec, installed: installed), let exec = job.exec {
            status.commands += 1
            do {
                let result = try await ShellCommand(
                    line: exec, environment: ["KVGOSSIP_CHANGED": paths.joined(separator: "\n")], timeout: job.commandTimeout
                ).run()
                if result.succeeded {
                    logger.info("command ran", metadata: ["command": "\(exec)", "result": "\(result)"])
                } else {
                    fail(["the command \(exec) failed: \(result)"], "command failed; the new files stay")
                }
            } catch {
                fail(["cannot run the command \(exec): \(error)"], "command failed; the new files stay")
            }
        }
        return true
    }

    private func fail(_ problems: [String], _ summary: String) {
        status.failures += 1
        status.lastError = problems.joined(separator: "; ")
        status.waitingFor = []
        logger.error("\(summary)", metadata: ["why": "\(problems.joined(separator: "; "))"])
        if job.once || firstRender {
            FileHandle.standardError.write(Data("kvgossip template: \(summary):\n\(problems.map { "  " + $0 }.joined(separator: "\n"))\n".utf8))
        }
    }

    private func succeed() {
        status.lastError = nil
        status.waitingFor = []
    }

    // MARK: Subscriptions

    /// Holds a list subscription for each wanted pattern and no other; each event signals a cycle.
    private func follow(_ wanted: Set<Pattern>) async {
        await Self.end(Self.release(&lists, keeping: wanted))
        for pattern in wanted.subtracting(lists.keys) {
            do {
                let subscription = try await client.subscribeList(pattern: pattern.text)
                let (events, signal) = (subscription.events, self.signal)
                let task = Task {
                    // A lost connection changes nothing yet; the resync after it does.
                    for await event in events where event != .connectionLost { signal.yield(.changed) }
                }
                lists[pattern] = Follower(subscription: subscription, task: task)
            } catch {
                logger.error("cannot follow \(pattern.text)", metadata: ["error": "\(error)"])
            }
        }
        status.dependencies = lists.keys.map(\.text).sorted()
    }

    /// `--wait-synced`: a key subscription per used key, whose dirtiness changes signal a cycle.
    private func followDirtiness(of used: Set<String>) async {
        await Self.end(Self.release(&keys, keeping: used))
        for key in used.subtracting(keys.keys) {
            guard let subscription = try? await client.subscribeKey(key) else { continue }
            // Made before the plan reads `dirtiness`: a change after that read is in the stream.
            let (changes, signal) = (subscription.dirtinessChanges, self.signal)
            let task = Task {
                for await _ in changes.dropFirst() { signal.yield(.changed) }
            }
            keys[key] = Follower(subscription: subscription, task: task)
        }
    }

    /// Takes out the followers whose key is not in `wanted`.
    private static func release<Key: Hashable, Subscription>(
        _ followers: inout [Key: Follower<Subscription>], keeping wanted: Set<Key>
    ) -> [Follower<Subscription>] {
        Set(followers.keys).subtracting(wanted).compactMap { followers.removeValue(forKey: $0) }
    }

    /// Ends followers: their task, then their subscription.
    private static func end<Subscription: Unsubscribing>(_ followers: [Follower<Subscription>]) async {
        for follower in followers {
            follower.task.cancel()
            await follower.subscription.unsubscribe()
        }
    }

    private func shutdown() async {
        timer?.cancel()
        for follower in lists.values { follower.task.cancel() }
        for follower in keys.values { follower.task.cancel() }
        await client.close()
        writeStatus()
    }

    private func writeStatus() {
        guard let path = job.statusFile else { return }
        status.updated = ISO8601DateFormatter().string(from: Date())
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do {
            let text = String(decoding: try encoder.encode(status), as: UTF8.self) + "\n"
            try Files.create(path, contents: text, mode: 0o644, force: true)
        } catch {
            logger.warning("cannot write the status file", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }
}

/// What the runner's followers hold: a subscription it can end.
protocol Unsubscribing: Sendable {
    func unsubscribe() async
}

extension ListSubscription: Unsubscribing {}
extension KeySubscription: Unsubscribing {}

/// Counters and state of a running template set, written to `--status-file` after each cycle
/// (Docs/templates.md §Status).
struct TemplateStatus: Codable, Sendable {
    /// Snapshots read from the agent.
    var snapshots = 0
    /// When the last one was asked for (Unix ms): it holds every write committed before then.
    var snapshotAt: UInt64 = 0
    /// Renders made (a snapshot equal to the last settled one is not rendered).
    var renders = 0
    /// Files replaced.
    var installs = 0
    /// Times `exec` ran.
    var commands = 0
    /// Failed renders, rejected checks, failed commands.
    var failures = 0
    var lastError: String?
    /// `--wait-synced`: the dirty keys a render waits for.
    var waitingFor: [String] = []
    /// The patterns followed.
    var dependencies: [String] = []
    var updated = ""
}
