import Synchronization
import KVGossipTestSupport
import Testing
@testable import KVGossipSerf

extension SerfIntegration {
    /// Three real agents on loopback: membership, queries answered through stream+respond, member events.
    @Suite struct ClusterTests {
        @Test func threeAgentsJoinAndShowTheirTags() async throws {
            try await SerfTestCluster.with { cluster in
                let a = try await cluster.start("a", syncPort: 17001)
                try await cluster.start("b", joining: a, syncPort: 17002)
                let began = ContinuousClock.now
                let c = try await cluster.start("c", joining: a, syncPort: 17003)
                let client = try await SerfRPCClient.connect(to: a.rpcAddress)
                let converged = try await Readiness.waitAsync { try await client.members().filter { $0.status == .alive }.count == 3 }
                let joinTime = ContinuousClock.now - began
                #expect(converged)

                let members = try await client.members()
                #expect(Dictionary(uniqueKeysWithValues: members.map { ($0.name, $0.tags["kvg"]) }) == ["a": "17001", "b": "17002", "c": "17003"])
                #expect(members.allSatisfy { $0.address == "127.0.0.1" && $0.protocolCurrent > 0 })
                let selfName = try await client.localNodeName()
                #expect(selfName == "a")
                #expect(Membership.peers(in: members, selfName: selfName) == [
                    SerfPeer(name: "b", address: "127.0.0.1", syncPort: 17002),
                    SerfPeer(name: "c", address: "127.0.0.1", syncPort: 17003),
                ])
                // The last joiner's own view converges too.
                let fromC = try await SerfRPCClient.connect(to: c.rpcAddress)
                #expect(try await Readiness.waitAsync { try await fromC.members().filter { $0.status == .alive }.count == 3 })
                await fromC.close()
                await client.close()
                print("measured: spawn of the 3rd agent → 3 alive on the first: \(Int(joinTime.milliseconds)) ms")
            }
        }

        @Test func queryIsAnsweredByTheOthersButNotBySelf() async throws {
            try await SerfTestCluster.with { cluster in
                let a = try await cluster.start("a")
                let b = try await cluster.start("b", joining: a)
                let c = try await cluster.start("c", joining: a)
                var clients: [SerfRPCClient] = []
                for agent in [a, b, c] { clients.append(try await SerfRPCClient.connect(to: agent.rpcAddress)) }
                #expect(try await Readiness.waitAsync { try await clients[0].members().filter { $0.status == .alive }.count == 3 })
                var responders: [QueryResponder] = []
                for (name, client) in zip(["a", "b", "c"], clients) {
                    responders.append(try await QueryResponder.start(name: name, on: client, query: "kvgtest"))
                }

                // Five rounds in which every agent acknowledged and b and c answered before the
                // query's deadline. On a busy machine a Serf agent can miss a deadline (its
                // goroutines not scheduled in time), so a round that came back short is asked
                // again, a few times at most; no round may ever bring an answer from a itself.
                var rtts: [Double] = []
                var complete = 0, asked = 0
                while complete < 5 && asked < 15 {
                    asked += 1
                    let began = ContinuousClock.now
                    let records = try await clients[0].query(
                        name: "kvgtest", payload: Array("from=a".utf8), timeout: .milliseconds(1000), requestAck: true)
                    var acks: Set<String> = []
                    var responses: [String: String] = [:]
                    var sawDone = false
                    for try await record in records {
                        switch record {
                        case .ack(let from): acks.insert(from)
                        case .response(let from, let payload):
                            responses[from] = String(decoding: payload, as: UTF8.self)
                            if responses.count == 2 { rtts.append((ContinuousClock.now - began).milliseconds) }
                        case .done: sawDone = true
                        }
                    }
                    #expect(sawDone)
                    #expect(acks.isSubset(of: ["a", "b", "c"]) && responses["a"] == nil, "round \(asked): \(acks) \(responses)")
                    #expect(responses.allSatisfy { $0.value == "\($0.key) answers a" }, "round \(asked): \(responses)")
                    if acks == ["a", "b", "c"] && responses.count == 2 { complete += 1 }
                }
                #expect(complete == 5, "\(complete) of \(asked) rounds had every ack and both answers in time")
                // a received its own query on its stream and recognised itself by the payload;
                // b and c answered every round (late answers to a short round count too).
                let total = asked, own = responders[0]
                #expect(try await Readiness.waitAsync { own.ownQueries == total })
                // A responder counts its answer after the RPC returns, which can be after a saw it.
                #expect(try await Readiness.waitAsync { responders[1].answered >= complete && responders[2].answered >= complete })
                for responder in responders { responder.cancel() }
                for client in clients { await client.close() }
                print("measured: query → both responses (ms, local profile): \(rtts.map { Int($0) })")
            }
        }

        @Test func memberEventsSeeAJoinAndAGracefulLeave() async throws {
            try await SerfTestCluster.with { cluster in
                let a = try await cluster.start("a")
                let client = try await SerfRPCClient.connect(to: a.rpcAddress)
                let events = Recorder(try await client.stream(type: SerfEventFilter.memberEvents))
                let began = ContinuousClock.now
                let d = try await cluster.start("d", joining: a)
                let joined = try await events.wait { event -> SerfMember? in
                    guard case .member(let e) = event, e.kind == .join else { return nil }
                    return e.members.first { $0.name == "d" }
                }
                #expect(joined?.0.status == .alive)

                let leaving = ContinuousClock.now
                let stop = Task { await d.stop() }  // SIGINT: Serf leaves gracefully
                let left = try await events.wait { event -> SerfMember? in
                    guard case .member(let e) = event, e.kind == .leave else { return nil }
                    return e.members.first { $0.name == "d" }
                }
                await stop.value
                #expect(left?.0.status == .left)
                #expect(try await client.members().first { $0.name == "d" }?.status == .left)
                if let joined, let left {
                    print("measured: member-join event +\(Int((joined.1 - began).milliseconds)) ms, member-leave event +\(Int((left.1 - leaving).milliseconds)) ms after SIGINT")
                }
                events.cancel()
                await client.close()
            }
        }
    }
}

/// Answers `query` on one node's connection with "<name> answers <sender>", skipping its own
/// queries: the record has no sender field, so the sender writes its name in the payload.
final class QueryResponder: Sendable {
    let name: String
    private let counts = Mutex((own: 0, answered: 0))
    private let task = Mutex<Task<Void, Never>?>(nil)

    private init(name: String) {
        self.name = name
    }

    static func start(name: String, on client: SerfRPCClient, query: String) async throws -> QueryResponder {
        let responder = QueryResponder(name: name)
        let stream = try await client.stream(type: SerfEventFilter.queries(named: query))
        let loop = Task {
            do {
                for try await event in stream {
                    guard case .query(let query) = event else { continue }
                    let sender = String(decoding: query.payload, as: UTF8.self).replacingOccurrences(of: "from=", with: "")
                    if sender == name {
                        responder.counts.withLock { $0.own += 1 }
                        continue
                    }
                    try await query.respond(Array("\(name) answers \(sender)".utf8))
                    responder.counts.withLock { $0.answered += 1 }
                }
            } catch {}
        }
        responder.task.withLock { $0 = loop }
        return responder
    }

    var ownQueries: Int { counts.withLock { $0.own } }
    var answered: Int { counts.withLock { $0.answered } }
    func cancel() { task.withLock { $0 }?.cancel() }
}
