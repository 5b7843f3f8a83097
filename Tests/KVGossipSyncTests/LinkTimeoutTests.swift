import Foundation
import KVGossipCore
import KVGossipNode
import KVGossipStore
import KVGossipTestSupport
import Logging
import NIOCore
import Synchronization
import Testing
@testable import KVGossipSync

/// The timeouts that end a quiet link and a silent session (Docs/protocol.md §Links), on an engine
/// in this process whose timeouts are a second, spoken to by a `LinkSpeaker`. Each test's socket
/// waits far less than the default timeouts, so it fails if the option is not what ends the wait.
///
/// The speaker's socket calls block, so they run on a thread of their own (`OwnThread.run`), never
/// on Swift's cooperative threads, where the engine accepts and serves connections (two threads on
/// this machine: blocking both held up the engine).
@Suite(.timeLimit(.minutes(2))) struct LinkTimeoutTests {
    /// An engine serving sync on a free loopback port, its node holding the root key.
    final class Served: Sendable {
        let root = SigningKey.generate()
        let engine: GossipEngine
        let port: Int
        let directory: String
        private let serving: Task<Void, any Error>

        init(_ configure: (inout LinkOptions) -> Void) async throws {
            directory = NSTemporaryDirectory() + "kvg-link-timeouts-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
            let store = try Store(directory: directory, root: root.publicKey)
            var options = GossipEngine.Options(nodeName: "served", syncPort: 0)
            configure(&options.links)
            let engine = GossipEngine(node: try Node(store: store, key: root), options: options, logger: Logger(label: "link-timeouts"))
            self.engine = engine
            let bound = Atomic<Int>(0)
            serving = Task { try await engine.serve(host: "127.0.0.1", port: 0) { bound.store($0, ordering: .releasing) } }
            guard await Readiness.waitAsync(timeout: .seconds(10), { bound.load(ordering: .acquiring) != 0 }) else {
                serving.cancel()
                throw CancellationError()
            }
            port = bound.load(ordering: .acquiring)
        }

        func speaker() async throws -> LinkSpeaker {
            let (port, root) = (port, root)
            return try await OwnThread.run { try LinkSpeaker(port: port, cluster: root.publicKey, credentials: LinkSpeaker.credentials(root), timeout: 15) }
        }

        func stop() {
            serving.cancel()
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    /// A link that carries nothing is closed once the idle timeout passes (default 60 s, here 1 s;
    /// the speaker's socket gives up after 15 s).
    @Test func aLinkThatCarriesNothingIsClosedOnceItsIdleTimeoutPasses() async throws {
        let s = try await Served { $0.idleTimeout = .seconds(1) }
        defer { s.stop() }
        let link = try await s.speaker()
        #expect(try await OwnThread.run { link.openFullSession() }, "the link works before it falls quiet")
        #expect(try await OwnThread.run { link.socket.readUntilClosed() != nil }, "the link was still open when the speaker gave up")
    }

    /// A session whose peer says nothing fails once the stall timeout passes (default 30 s, here
    /// 1 s), and gives its slot back: with one session allowed per link, a second opens only then
    /// (opening it while the first holds the slot would close the link).
    @Test func aSessionWhosePeerFallsSilentEndsAndFreesItsSlot() async throws {
        let s = try await Served {
            $0.sessionStallTimeout = .seconds(1)
            $0.sessionsPerLink = 1
        }
        defer { s.stop() }
        let link = try await s.speaker()
        #expect(try await OwnThread.run { link.openFullSession(session: 1) })
        let held = await Readiness.waitAsync(timeout: .seconds(10)) { s.engine.links.open.contains { $0.sessionsOpenedByPeer == 1 } }
        #expect(held, "the engine never counted the open session")
        let freed = await Readiness.waitAsync(timeout: .seconds(10)) {
            !s.engine.links.open.isEmpty && s.engine.links.open.allSatisfy { $0.sessionsOpenedByPeer == 0 }
        }
        #expect(freed, "the silent session still held its slot after 10 s")
        #expect(try await OwnThread.run { link.openFullSession(session: 3) }, "a new session on the same link")
    }
}
