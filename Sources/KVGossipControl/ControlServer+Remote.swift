import KVGossipCore
import KVGossipNet
import KVGossipNode
import Logging
import NIOCore
import NIOPosix

extension ControlServer {
    /// Serves remote clients on TCP (Docs/protocol.md §Control over TCP). Every connection opens
    /// with the link handshake under the control tag: the client proves it holds a key the cluster
    /// admits (the rule peers pass, Docs/contract.md §Admission) and learns who this agent is;
    /// every frame after is sealed. Only then is it counted against the caps and served: reads
    /// and client-signed writes. A revocation closes the connections of the clients it takes.
    public func serveTCP(host: String, port: Int, ready: @Sendable (Int) -> Void = { _ in }) async throws {
        let accepted = AcceptedConnections<FramedConnection>()
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port) { channel in
                // A stranger's frames are held to the handshake's size until it is admitted.
                let frameLimit = FrameLimit(min(LinkHandshake.maxFrameBytes, self.largestFrame(sealing: true)))
                return accepted.track(self.configure(channel, frameLimit: frameLimit).map { FramedConnection($0, frameLimit: frameLimit) })
            }
        let bound = server.channel.localAddress?.port ?? port
        logger.info("control API listening on TCP (admitted clients; reads and client-signed writes)", metadata: ["address": "\(host):\(bound)"])
        let observation = handler.node.store.observeCommits { [weak self] changes in
            guard changes.contains(where: { if case .revocation = $0 { true } else { false } }) else { return }
            Task { self?.dropClientsNoLongerAdmitted() }
        }
        defer { observation.cancel() }
        ready(bound)
        try await accepted.serve(server) { stranger in
            let channel = stranger.channel
            let source = channel.remoteAddress?.ipAddress ?? "?"
            // Until its handshake ends a connection is a stranger: it holds one of a few handshake
            // slots, never one of the admitted clients' connections.
            guard let slot = self.handshakes.reserve(source, close: { channel.close(promise: nil) }) else {
                await stranger.closeUnserved()
                return
            }
            await self.serveRemote(stranger.connection, frameLimit: stranger.frameLimit, source: source, slot: slot)
        }
    }

    /// One TCP connection: the handshake within its deadline, the caps, then the requests.
    private func serveRemote(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, frameLimit: FrameLimit, source: String, slot: UInt64) async {
        let channel = connection.channel
        let deadline = channel.eventLoop.scheduleTask(in: .milliseconds(Int64(limits.handshakeSeconds * 1000))) {
            channel.close(promise: nil)
        }
        var holdsSlot = true
        defer {
            deadline.cancel()
            if holdsSlot { handshakes.release(slot) }
        }
        do {
            try await connection.executeThenClose { inbound, outbound in
                var frames = inbound.makeAsyncIterator()
                let plain = FrameSender(outbound: outbound)
                guard let first = try await frames.next().map({ Array($0.readableBytesView) }) else { return }
                if FirstFrame.isPlainRequest(first) {
                    let refusal = FirstFrame.plainRequestRefusal
                    noteRefused(refusal, peer: nil, source: source)
                    await refuse(channel, &frames, plain, .failure(0, refusal.reason.rawValue, refusal.detail))
                    return
                }
                let opened: OpenedLink
                do {
                    opened = try await LinkOpening.open(
                        handshake(), first: first, frames: &frames, outbound: outbound, admit: { self.handler.node.admissionRefusal(of: $0) },
                        vouched: { self.handshakes.vouch(slot) }, admitted: { frameLimit.raise(to: self.largestFrame(sealing: true)) })
                } catch let refused as LinkRefused {
                    noteRefused(refused.refusal, peer: refused.peer, source: source)
                    await refuse(channel, &frames, plain, nil)
                    return
                }
                deadline.cancel()
                handshakes.admitted(slot)
                holdsSlot = false
                let writer = ResponseWriter(FrameSender(outbound: outbound, sealer: opened.sender))
                let limits = self.limits
                if let busy = admission.withLock({ $0.admit(.remote, address: source, limits: limits) }) {
                    await refuse(channel, &frames, writer.sender, .failure(0, "busy", busy))
                    return
                }
                defer { admission.withLock { $0.release(.remote, address: source) } }
                let client = "\(opened.peer.name) (\(opened.peer.nodeKey.fingerprint))"
                let number = remoteClients.withLock {
                    $0.add(opened.peer) { refusal in
                        // The goodbye waits for the connection's turn; a client that does not
                        // read is closed regardless.
                        channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
                        Task {
                            try? await writer.send(.failure(0, refusal.reason.rawValue, "\(refusal.detail); closing this connection"))
                            try? await channel.close()
                        }
                    }
                }
                defer { remoteClients.withLock { $0.remove(number) } }
                // A revocation committed during the handshake found no connection to close.
                if let refusal = handler.node.admissionRefusal(of: opened.peer) {
                    noteRefused(refusal, peer: opened.peer, source: source)
                    await refuse(channel, &frames, writer.sender, .failure(0, refusal.reason.rawValue, refusal.detail))
                    return
                }
                logger.info("control client admitted", metadata: ["client": "\(client)", "address": "\(source)"])
                try await answer(&frames, open: opened.receiver.open, writer: writer, transport: .remote)
            }
        } catch {
            logger.debug("control connection ended", metadata: ["address": "\(source)", "error": "\(error)"])
        }
    }

    /// This agent's side of a control handshake: its node key and the grants chaining it to the
    /// root, so its clients can tell it from an impostor on the address. No cluster secret: that
    /// is a secret of the hosts, and clients prove themselves with their own keys.
    private func handshake() -> LinkHandshake {
        let node = handler.node
        let credentials = LinkCredentials(
            signingKey: node.key, name: handler.nodeName ?? "agent", syncPort: 0, credential: node.credential, instance: instanceID)
        return LinkHandshake(
            role: .responder, cluster: node.root, credentials: credentials, secret: nil, ephemeral: .generate(),
            nonce: secureRandomBytes(LinkHandshake.nonceBytes), limits: node.store.validator.limits, service: .control)
    }

    /// A revocation may have taken a connected client's credential: its connection is told why and closed.
    func dropClientsNoLongerAdmitted() {
        for client in remoteClients.withLock({ $0.all }) {
            guard let refusal = handler.node.admissionRefusal(of: client.identity) else { continue }
            logger.notice("closing the control connection of a client no longer admitted", metadata: [
                "client": "\(client.identity.name) (\(client.identity.nodeKey.fingerprint))", "reason": "\(refusal)",
            ])
            handler.node.noteRefusal(refusal)
            client.drop(refusal)
        }
    }

    /// Counts a refused TCP client (`status`, `kvgossip_refusals_total`) and logs it at a bounded rate.
    private func noteRefused(_ refusal: Refusal, peer: LinkIdentity?, source: String) {
        handler.node.noteRefusal(refusal)
        refusalLog.note(refusal, "refused a control client", [
            "client": peer.map { "\($0.name) (\($0.nodeKey.fingerprint))" } ?? source, "address": source,
        ])
    }
}
