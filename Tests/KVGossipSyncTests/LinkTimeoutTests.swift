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
    /// A link that carries nothing is closed once the idle timeout passes (default 60 s, here 1 s;
    /// the speaker's socket gives up after 15 s).
    @Test func aLinkThatCarriesNothingIsClosedOnceItsIdleTimeoutPasses() async throws {
        let s = try await ServedEngine { $0.links.idleTimeout = .seconds(1) }
        defer { s.stop() }
        let link = try await s.speaker()
        #expect(try await OwnThread.run { link.openFullSession() }, "the link works before it falls quiet")
        #expect(try await OwnThread.run { link.socket.readUntilClosed() != nil }, "the link was still open when the speaker gave up")
    }

    /// A session whose peer says nothing fails once the stall timeout passes (default 30 s, here
    /// 1 s), and gives its slot back: with one session allowed per link, a second opens only then
    /// (opening it while the first holds the slot would close the link).
    @Test func aSessionWhosePeerFallsSilentEndsAndFreesItsSlot() async throws {
        let s = try await ServedEngine {
            $0.links.sessionStallTimeout = .seconds(1)
            $0.links.sessionsPerLink = 1
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
