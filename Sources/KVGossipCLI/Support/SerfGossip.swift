import Foundation
import KVGossipCore
import KVGossipNode
import KVGossipSerf
import KVGossipSync
import Logging

/// Connects the gossip engine to Serf (Docs/contract.md §Serf): our `kvg` tag, live members as peers
/// (the engine decides when to sync with them), answering the `kvgossip-hash` query when our tree
/// differs, and the start-up query whose answers say whom to reconcile with. Decides nothing.
actor SerfGossip {
    let session: SerfSession
    let engine: GossipEngine
    let node: Node
    let nodeName: String
    let syncPort: UInt16
    let logger: Logger
    let queryTimeout: Duration
    private var membership: Membership
    private var startupDone = false

    init(session: SerfSession, engine: GossipEngine, nodeName: String, syncPort: UInt16, logger: Logger, queryTimeout: Duration = .seconds(3)) {
        self.session = session
        self.engine = engine
        node = engine.node
        self.nodeName = nodeName
        self.syncPort = syncPort
        self.logger = logger
        self.queryTimeout = queryTimeout
        membership = Membership(selfName: nodeName)
    }

    /// Follows the session until cancelled.
    func run() async {
        session.start()
        for await event in session.events {
            switch event {
            case .connected(let client):
                await connected(client)
            case .disconnected(let reason):
                logger.warning("lost the Serf agent; retrying", metadata: ["reason": "\(reason)"])
            case .event(.member(let change)):
                if membership.apply(change) { publishPeers() }
            case .event(.query(let query)):
                await answer(query)
            case .event(.user):
                break
            }
        }
    }

    private func connected(_ client: SerfRPCClient) async {
        do {
            // An agent started separately (`--serf`) has a node name of its own, which need not be
            // ours: it is the one the members list shows for this node, so it is the one to leave
            // out of the peers and to sit on the gossip's ring by.
            if let serfName = try? await client.localNodeName(), serfName != membership.selfName {
                if serfName != nodeName {
                    logger.notice("the Serf agent names this node differently; using its name among the members", metadata: [
                        "serf-name": "\(serfName)", "name": "\(nodeName)",
                    ])
                }
                membership = Membership(selfName: serfName)
                engine.setOwnName(serfName)
            }
            try await client.tags(set: [Membership.defaultTag: String(syncPort)])
            membership.replaceAll(with: try await client.members())
            publishPeers()
        } catch {
            logger.warning("Serf set-up failed", metadata: ["error": "\(error)"])
        }
        if !startupDone {
            startupDone = true
            engine.start()
            Task { await self.startupQuery() }
        }
    }

    /// Members as the gossip's peers: a member's address with its `kvg` port is only a hint of
    /// where to dial; the link's handshake decides who answers there.
    private func publishPeers() {
        let peers = membership.peers.compactMap { p -> (name: String, address: PeerAddress)? in
            p.address.isEmpty ? nil : (p.name, PeerAddress(host: p.address, port: p.syncPort))
        }
        engine.setMembers(peers)
    }

    private var announcement: TreeHashAnnouncement {
        TreeHashAnnouncement(cluster: node.root, treeHash: node.store.treeHash, syncPort: syncPort, nodeName: nodeName)
    }

    /// Answers as TreeHashQuery says (only when our tree differs).
    private func answer(_ query: SerfIncomingQuery) async {
        guard query.name == TreeHashAnnouncement.queryName else { return }
        switch TreeHashQuery.reply(toQuery: query.payload, mine: announcement) {
        case .stayQuiet(let why):
            logger.trace("not answering a tree-hash query", metadata: ["why": "\(why)"])
        case .answer(let bytes):
            do { try await query.respond(bytes) } catch {
                logger.debug("could not answer a tree-hash query", metadata: ["error": "\(error)"])
            }
        }
    }

    /// At start: ask every member for its tree hash and reconcile with each one that differs, as
    /// the answers arrive. Silence proves nothing: keys stay `unsynced` until a session completes.
    func startupQuery() async {
        let started = Date()
        var differing = 0
        do {
            let request = SerfQueryRequest(name: TreeHashAnnouncement.queryName, payload: announcement.encoded, timeout: queryTimeout)
            for try await event in try await session.query(request) {
                guard case .response(let from, let payload) = event,
                    let address = TreeHashQuery.reconcileTarget(answer: payload, from: from, memberHost: membership.members[from]?.address, mine: announcement)
                else { continue }
                differing += 1
                engine.reconcile(with: address, reason: "start-up query: \(from) differs")
            }
        } catch {
            logger.warning("start-up tree-hash query failed; relying on member joins and periodic rounds", metadata: ["error": "\(error)"])
            return
        }
        logger.info("start-up query done", metadata: [
            "differing": "\(differing)", "seconds": "\(String(format: "%.2f", Date().timeIntervalSince(started)))",
        ])
    }
}
