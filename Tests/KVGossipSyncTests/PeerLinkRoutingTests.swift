import Foundation
import KVGossipCore
import KVGossipTestSupport
import Logging
import NIOEmbedded
import Synchronization
import Testing
@testable import KVGossipSync

/// How a link routes what its peer sends, with no connection: frames go straight to `route`.
struct PeerLinkRoutingTests {
    /// Pulled records start their checks as they arrive (`Store.precheck`) only where this node
    /// asked for them: in a session of its own, and no more records than a message may carry. A
    /// peer that sends pulled records into a session it opened gets no work done for them here
    /// (the session then refuses the message unread), and more than the limit are not decoded.
    @Test func pulledRecordsAreCheckedEarlyOnlyInThisNodesSessionsAndWithinTheLimit() throws {
        var options = LinkOptions()
        options.syncLimits.batchRecords = 3
        let prechecked = Mutex<[Int]>([])
        let link = Self.link(options: options) { batch in prechecked.withLock { $0.append(batch.count) } }
        let records = try Self.records(4)

        let (ours, _) = try link.openSession()
        #expect(try link.route(Self.frame(ours, .pulled(Array(records[0..<2]), last: false))) == nil)
        #expect(prechecked.withLock { $0 } == [2])

        // Over the limit: refused as it is decoded (its link then closes), nothing checked.
        #expect(throws: Refusal.self) { try link.route(Self.frame(ours, .pulled(records, last: true))) }
        // Other messages of its own sessions: nothing to check early.
        _ = try link.route(Self.frame(ours, .records(Array(records[0..<1]))))
        #expect(prechecked.withLock { $0 } == [2])

        // A session the peer opened (even numbers, on a link this node dialed).
        let opened = try link.route(Self.frame(2, .open(.full, Hash256.of([1]))))
        guard case .opened(session: 2, _, _) = opened else {
            Issue.record("the peer's opening was not handed over: \(String(describing: opened))")
            return
        }
        _ = try link.route(Self.frame(2, .pulled(Array(records[0..<1]), last: true)))
        #expect(prechecked.withLock { $0 } == [2])

        // A session of this node's numbering that it never opened: refused, nothing checked.
        #expect(throws: SyncProtocolError.self) { try link.route(Self.frame(ours + 2, .pulled(Array(records[0..<1]), last: true))) }
        #expect(prechecked.withLock { $0 } == [2])
        link.close()
    }

    /// A session answered in place hears its peer's messages on the routing thread, before
    /// `route` returns, with nothing queued for a runner; it hears the watchdog's nudges and the
    /// link's close; and once it says it is over, it is gone: a later message for it is refused.
    @Test func aSessionAnsweredInPlaceHearsEverythingWhereItHappens() throws {
        let heard = Mutex<[String]>([])
        let link = Self.link(options: LinkOptions()) { _ in }
        // Each handler asks the link something under its lock: called with the lock held, it
        // would hang here.
        let ending = try link.openSession { event in
            _ = link.isClosed
            heard.withLock { $0.append("ending: \(Self.name(event))") }
            if case .message = event { return .end(replies: []) }
            return .goOn
        }
        let lasting = try link.openSession { event in
            _ = link.isClosed
            heard.withLock { $0.append("lasting: \(Self.name(event))") }
            return .goOn
        }
        // A session that ends at the watchdog's nudge (its peer stalled) is gone after it.
        let stalled = try link.openSession { event in
            _ = link.isClosed
            if case .nudge = event { return .end(replies: []) }
            return .goOn
        }
        #expect(try link.route(Self.frame(ending, .results([]))) == nil)
        #expect(heard.withLock { $0 } == ["ending: message"])
        #expect(throws: SyncProtocolError.self) { try link.route(Self.frame(ending, .results([]))) }

        link.nudgeSessions()
        #expect(throws: SyncProtocolError.self) { try link.route(Self.frame(stalled, .results([]))) }
        #expect(try link.route(Self.frame(lasting, .results([]))) == nil)
        link.close()
        #expect(heard.withLock { Array($0.dropFirst()) } == ["lasting: nudge", "lasting: message", "lasting: closed"])
    }

    static func name(_ event: SessionEvent) -> String {
        switch event {
        case .message: "message"
        case .nudge: "nudge"
        case .closed: "closed"
        }
    }

    /// A link this node dialed (its sessions odd), writing to nowhere.
    static func link(options: LinkOptions, precheck: @escaping @Sendable ([Record]) -> Void) -> PeerLink {
        let peer = SigningKey.generate()
        return PeerLink(
            peer: LinkIdentity(nodeKey: peer.publicKey, name: "peer", syncPort: 7947, credential: [], instance: [UInt8](repeating: 7, count: LinkIdentity.instanceBytes)),
            address: PeerAddress(host: "127.0.0.1", port: 7947), initiatedHere: true, peerClockOffsetMs: 0, options: options,
            output: LinkOutput(channel: EmbeddedChannel(), sender: SecretStreamSender(key: [UInt8](repeating: 1, count: 32)), backlogLimit: 1 << 20, direct: false),
            logger: Logger(label: "test"), precheck: precheck, disconnect: {})
    }

    static func records(_ count: Int) throws -> [Record] {
        let root = SigningKey.generate()
        return try (0..<count).map { i in
            Record(cluster: root.publicKey, key: try Key("/k/\(i)"), kind: .value, value: Array("v".utf8),
                   timestamp: HLC(physicalMs: UInt64(Date().timeIntervalSince1970 * 1000)), signer: root, pool: [])
        }
    }

    /// A frame as the link's reader hands it to `route` once opened: session number, then message.
    static func frame(_ session: UInt32, _ message: SyncMessage) -> [UInt8] { LinkSpeaker.body(message, session: session) }
}
