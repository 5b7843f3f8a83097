import KVGossipTestSupport
import Foundation
import KVGossipSerf
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Real `serf agent` processes for one test, in their own temporary directory, on ports probed
/// free. Every agent is stopped by its PID when the test ends, passing or failing.
final class SerfTestCluster: Sendable {
    let directory: String
    private let agents = Mutex<[EmbeddedSerf]>([])

    private init(directory: String) {
        self.directory = directory
    }

    /// Runs `body` with a fresh cluster, then stops every agent and removes the directory (kept
    /// when the test failed, so the agents' logs can be read).
    @discardableResult
    static func with<T: Sendable>(_ body: (SerfTestCluster) async throws -> T) async throws -> T {
        let temporary = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("kvgossip-serf-XXXXXX").path
        var template = Array(temporary.utf8CString)
        guard let made = mkdtemp(&template) else { throw SerfError.process("mkdtemp failed") }
        let cluster = SerfTestCluster(directory: String(cString: made))
        do {
            let result = try await body(cluster)
            await cluster.stopAll()
            try? FileManager.default.removeItem(atPath: cluster.directory)
            return result
        } catch {
            await cluster.stopAll()
            print("serf test directory kept: \(cluster.directory)")
            throw error
        }
    }

    /// Starts an agent named `name` (joining `join`'s gossip address when given) and waits for its RPC.
    @discardableResult
    func start(
        _ name: String, joining join: EmbeddedSerf? = nil, syncPort: Int = 17000,
        configure: (inout EmbeddedSerfConfiguration) -> Void = { _ in }
    ) async throws -> EmbeddedSerf {
        let ports = FreePorts.take(2)
        var configuration = EmbeddedSerfConfiguration(
            nodeName: name, directory: directory + "/" + name, bindPort: ports[0], rpcPort: ports[1], syncPort: syncPort,
            join: join.map { ["127.0.0.1:\($0.configuration.bindPort)"] } ?? [], profile: "local",
            stopTimeout: .seconds(6), restartBackoff: SerfBackoff(initial: .milliseconds(100), maximum: .seconds(1)))
        configure(&configuration)
        let agent = EmbeddedSerf(configuration, logger: quietLogger("test.serf.\(name)"))
        agents.withLock { $0.append(agent) }
        try await agent.start()
        return agent
    }

    /// Stops all agents at once (each by its PID; SIGTERM, so no test waits for a leave to spread).
    func stopAll() async {
        let all = agents.withLock { $0 }
        await withTaskGroup(of: Void.self) { group in
            for agent in all { group.addTask { await agent.stop(gracefully: false) } }
        }
    }
}

/// Ports nobody listens on, TCP and UDP alike (Serf gossips on both), never handed out twice in a run.
enum FreePorts {
    private static let handedOut = Mutex<Set<Int>>([])

    static func take(_ count: Int) -> [Int] {
        var ports: [Int] = []
        while ports.count < count {
            let port = LoopbackPort.free()
            if handedOut.withLock({ $0.insert(port).inserted }) { ports.append(port) }
        }
        return ports
    }
}

/// Only errors reach the test output; the supervisor's expected restart warnings stay out of it.
func quietLogger(_ label: String) -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = .critical
    return logger
}

/// Collects everything a sequence yields, from one long-lived iteration (a stream allows only one),
/// so a test can wait for several things in turn.
final class Recorder<Element: Sendable>: Sendable {
    private let seen = Mutex<[(at: ContinuousClock.Instant, element: Element)]>([])
    private let ended = Mutex<(any Error)?>(nil)
    private let task = Mutex<Task<Void, Never>?>(nil)

    init<S: AsyncSequence & Sendable>(_ sequence: S) where S.Element == Element {
        let iteration = Task {
            do {
                for try await element in sequence { self.seen.withLock { $0.append((.now, element)) } }
            } catch {
                self.ended.withLock { $0 = error }
            }
        }
        task.withLock { $0 = iteration }
    }

    var elements: [Element] { seen.withLock { $0.map(\.element) } }
    var error: (any Error)? { ended.withLock { $0 } }

    /// The first recorded element `match` accepts (waiting up to `timeout`), with when it arrived.
    func wait<T>(for timeout: Duration = .seconds(30), _ match: (Element) -> T?) async throws -> (T, ContinuousClock.Instant)? {
        let deadline = ContinuousClock.now + timeout
        while true {
            for entry in seen.withLock({ $0 }) {
                if let hit = match(entry.element) { return (hit, entry.at) }
            }
            if ContinuousClock.now >= deadline { return nil }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    func cancel() {
        task.withLock { $0 }?.cancel()
    }
}

extension Duration {
    var milliseconds: Double {
        let (s, a) = components
        return Double(s) * 1000 + Double(a) / 1e15
    }
}
