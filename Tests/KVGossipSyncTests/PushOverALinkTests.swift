import Foundation
import KVGossipCore
import KVGossipTestSupport
import Synchronization
import Testing
@testable import KVGossipSync

/// A write pushed by a running engine to a peer over a real link, and the peer's answer taken
/// where it arrives (`PushAnswer`): counted when it comes; when it does not, the push fails at the
/// stall timeout and a repair session follows. The peer is a `LinkSpeaker` answering on a loopback
/// listener that the engine knows as a static peer, so the engine dials it as it would a node.
@Suite(.timeLimit(.minutes(2))) struct PushOverALinkTests {
    @Test func anAnswerEndsThePushAndIsCounted() async throws {
        let root = SigningKey.generate()
        let peer = PeerOnAListener(root: root) { speaker, notes in
            guard let push = PeerOnAListener.push(from: speaker) else { return }
            notes.lines.withLock { $0.append(push.records.map(\.key.path).joined(separator: " ")) }
            speaker.send(.results([PushResult(code: .accepted)]), session: push.session)
        }
        defer { peer.stop() }
        let s = try await ServedEngine(root: root, running: true) { $0.staticPeers = [peer.address] }
        defer { s.stop() }
        _ = try s.engine.node.mint(try Key("/app/pushed"), value: Array("v".utf8))
        let counted = await Readiness.waitAsync(timeout: .seconds(20)) { s.engine.gossipCounters.pushesOK == 1 }
        #expect(counted, "the answer was not taken: \(s.engine.gossipCounters)")
        #expect(peer.heard == ["/app/pushed"])
        #expect(s.engine.gossipCounters.pushesFailed == 0)
        #expect(s.engine.keyState(of: try Key("/app/pushed")) != .pendingPush)
    }

    @Test func aPushWhosePeerFallsSilentFailsAndARepairFollows() async throws {
        let root = SigningKey.generate()
        let peer = PeerOnAListener(root: root) { speaker, notes in
            guard PeerOnAListener.push(from: speaker) != nil else { return }
            // Say nothing: the link's watchdog ends the push, and a repair opens a full session.
            if case .open(.full, _)? = speaker.receive()?.message { notes.lines.withLock { $0.append("repair") } }
        }
        defer { peer.stop() }
        let s = try await ServedEngine(root: root, running: true) {
            $0.staticPeers = [peer.address]
            $0.links.sessionStallTimeout = .seconds(1)
        }
        defer { s.stop() }
        _ = try s.engine.node.mint(try Key("/app/pushed"), value: Array("v".utf8))
        let repaired = await Readiness.waitAsync(timeout: .seconds(20)) { peer.heard == ["repair"] }
        #expect(repaired, "no repair session after the silent push: \(s.engine.gossipCounters)")
        #expect(s.engine.gossipCounters.pushesFailed == 1 && s.engine.gossipCounters.pushesOK == 0)
    }

    /// Records one message cannot carry go as several pushes, each sent once the one before is
    /// answered, and count as one push answered. Here every record is a batch of its own (a
    /// 1-byte batch), and the peer holds its first answer back while three more keys queue.
    @Test func aPushTooLargeForOneMessageGoesInPartsOneAfterTheOther() async throws {
        let root = SigningKey.generate()
        let release = DispatchSemaphore(value: 0)
        let peer = PeerOnAListener(root: root) { speaker, notes in
            guard let first = PeerOnAListener.push(from: speaker) else { return }
            notes.lines.withLock { $0.append("first") }
            release.wait()
            speaker.send(.results([PushResult(code: .accepted)]), session: first.session)
            for _ in 0..<3 {
                guard let part = PeerOnAListener.push(from: speaker) else { return }
                notes.lines.withLock { $0.append(part.records.map(\.key.path).joined(separator: " ")) }
                // The next part must wait for this answer: nothing more comes meanwhile (a part
                // sent at once would be here within a fraction of this window).
                var ready = pollfd(fd: speaker.socket.fd, events: Int16(POLLIN), revents: 0)
                if poll(&ready, 1, 200) != 0 { notes.lines.withLock { $0.append("a part came before the one ahead was answered") } }
                speaker.send(.results(part.records.map { _ in PushResult(code: .accepted) }), session: part.session)
            }
        }
        defer { peer.stop() }
        defer { release.signal() }
        let s = try await ServedEngine(root: root, running: true) {
            $0.staticPeers = [peer.address]
            $0.gossip.pushesPerPeer = 1
            $0.links.syncLimits.batchBytes = 1
        }
        defer { s.stop() }
        _ = try s.engine.node.mint(try Key("/app/first"), value: Array("v".utf8))
        let inFlight = await Readiness.waitAsync(timeout: .seconds(20)) { peer.heard == ["first"] }
        for n in 1...3 { _ = try s.engine.node.mint(try Key("/app/k\(n)"), value: Array("v".utf8)) }
        release.signal()
        let counted = await Readiness.waitAsync(timeout: .seconds(20)) { s.engine.gossipCounters.pushesOK == 2 }
        #expect(inFlight)
        #expect(counted, "the parts were not answered as one push: \(s.engine.gossipCounters)")
        #expect(peer.heard == ["first", "/app/k1", "/app/k2", "/app/k3"])
        #expect(s.engine.gossipCounters.pushesFailed == 0)
        for n in 1...3 { #expect(s.engine.keyState(of: try Key("/app/k\(n)")) != .pendingPush) }
    }

    /// A node the engine dials: each connection is answered as a link by `root`'s key, and
    /// `converse` speaks on it (on the listener's thread for that connection) and notes what it
    /// heard; the connection then stays open until `stop()`.
    final class PeerOnAListener: Sendable {
        private let server: LoopbackServer
        private let notes: Notes

        final class Notes: Sendable {
            let lines = Mutex<[String]>([])
            let stopping = DispatchSemaphore(value: 0)
        }

        init(root: SigningKey, _ converse: @escaping @Sendable (LinkSpeaker, Notes) -> Void) {
            let notes = Notes()
            self.notes = notes
            server = LoopbackServer { fd, _ in
                guard let speaker = try? LinkSpeaker(answering: fd, cluster: root.publicKey, credentials: LinkSpeaker.credentials(root), timeout: 15)
                else { return }
                converse(speaker, notes)
                notes.stopping.wait()
                // Passed on: every connection's thread waits here, and `stop()` signals once.
                notes.stopping.signal()
            }
        }

        var address: PeerAddress { PeerAddress(host: "127.0.0.1", port: server.port) }
        var heard: [String] { notes.lines.withLock { $0 } }

        func stop() {
            notes.stopping.signal()
            server.stop()
        }

        /// The opening and records of a push, read from the speaker; nil if something else came.
        static func push(from speaker: LinkSpeaker) -> (session: UInt32, records: [Record])? {
            guard let opening = speaker.receive(), case .open(.push, _) = opening.message, let sent = speaker.receive(),
                sent.session == opening.session, case .records(let records) = sent.message
            else { return nil }
            return (opening.session, records)
        }
    }
}
