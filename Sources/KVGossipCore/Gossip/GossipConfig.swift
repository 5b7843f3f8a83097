/// How a node spreads records and reconciles (Docs/architecture.md §Gossip).
public struct GossipConfig: Sendable, Equatable {
    /// Mean time between anti-entropy sessions with a random peer (±20 % jitter), ms.
    public var antiEntropyIntervalMs: UInt64 = 30_000
    /// Random peers each fresh record is pushed to, by its writer and by forwarders alike (beside
    /// the next peer on the ring, `forwardsAlongRing`); nil: the writer's `writeFanout` and the
    /// forwarders' `forwardFanout`.
    public var fanout: Int?
    /// Beyond direct mail, the writer of a record and every node that forwards it also push it to
    /// the next peer after them on the ring (`PeerTable.ring`, passing over failing peers and the
    /// sender). Random pushes leave about e^−fanout of a large cluster unreached; along the ring
    /// each of those is reached from the nearest node before it that was, a hop or two later,
    /// so every node is reached with a fanout that need not grow with the cluster
    /// (Docs/architecture.md §Simulation).
    public var forwardsAlongRing = true
    /// Up to this many peers a writer pushes to all of them (direct mail), and where every node
    /// shares one view of the cluster (Serf's members, no static peers) no receiver forwards a
    /// push: one push per node reached, where forwarding costs every node five pushes, mostly
    /// duplicates. All of a write's pushes leave at once within `pushesInFlight`, which is
    /// why the two are equal (Docs/architecture.md §Gossip).
    public var directMailPeers = 32
    /// Records per push.
    public var pushBatch = 256
    /// Pushes in flight to one peer, and in all.
    public var pushesPerPeer = 2
    public var pushesInFlight = 32
    /// Keys queued for one peer; past this the queue is dropped, the overflow counted, and a full
    /// session with that peer does the work instead.
    public var queueLimit = 4096
    /// Keys queued for all peers together: past this the queue that grows is dropped the same way,
    /// so the queues' memory is bounded however many peers there are.
    public var queuedKeysLimit = 65_536
    /// After records arrive new (by push, hand-over or a fetch in a session), or a local write that
    /// missed a peer, a node tells this many peers its new tree hash a moment later
    /// (`announceDelayMs`): the next ones after it on the ring of peers ordered by name
    /// (`PeerTable.ring`), passing over peers whose last push or session failed and peers known to
    /// hold every record announced (their sender, the peers pushed to). A peer still without the
    /// records sees a different hash and pulls them, and announces in turn. This backs up the
    /// pushes along the ring where they break: a successor down but not yet gone from the
    /// membership, views that disagree, pushes that stop early (Docs/architecture.md
    /// §Simulation). 0: off.
    public var announceFanout = 2
    /// Long enough for the pushes to land first (on a busy host tens of milliseconds), so that an
    /// announcement finds a peer without the record only when every push missed it.
    public var announceDelayMs: UInt64 = 100
    /// A failed push or session is repaired by a full session with that peer this much later,
    /// twice as long after each further failure in a row, at most `antiEntropyIntervalMs`.
    public var repairDelayMs: UInt64 = 1_000
    /// Sessions the whole cluster runs with a member that joins: each node that hears of the
    /// join starts one with probability `joinedSessions / peers` (always, in a cluster of at most
    /// `joinedSessions + 1` nodes).
    public var joinedSessions = 3
    /// Full sessions an announcement may start at once (the rest wait for the periodic round).
    public var announcedSessionsInFlight = 2

    public init() {}

    /// How many peers a record minted or handed in here goes to, in a cluster of `peers` other
    /// nodes: every one up to `directMailPeers`, else as many as a forwarder's.
    public func writeFanout(peers: Int) -> Int {
        if let fanout { return fanout }
        guard peers > 0 else { return 0 }
        return peers <= directMailPeers ? peers : forwardFanout(peers: peers)
    }

    /// How many random peers a record new to this node goes on to, beside the next peer on the
    /// ring: 4, or every peer in a smaller cluster. Four leave about 2 % of a large cluster to the
    /// pushes along the ring, for 5 pushes per node; three leave 5 %, and at 10 % packet loss the
    /// runs walked along the ring, each lost packet a 200 ms retransmission, grew long enough to
    /// put the last node past a second (Docs/architecture.md §Simulation).
    public func forwardFanout(peers: Int) -> Int {
        if let fanout { return fanout }
        return max(0, min(4, peers))
    }

    /// Whether a record pushed by a peer this node knows goes on to this node's own peers. Not
    /// where a forward would reach every peer anyway (at most 5 nodes by default). Nor under
    /// direct mail where the nodes share one view of the cluster (this node has no static peers,
    /// so its peers are Serf's members, as the writer's are): a push then most likely comes from
    /// a writer that pushed to every node, and a forward would only hand each a duplicate (a link
    /// session, a lookup and an answer). A push does not say whether its sender wrote it or
    /// forwarded it, so this is a bet on the views agreeing, with a margin: only a node that sees
    /// at most `directMailPeers` − 4 peers makes it, so a writer beyond direct mail, which only
    /// pushed to a few, and a receiver that does not forward need views five members apart (a
    /// churn Serf settles within a second). Static peers may be listed one way (a hub that leaves
    /// list and that lists them), so a node with static peers forwards. A node missed anyway hears
    /// the new tree hash from the two nodes before it on the ring, or is repaired, or pulls
    /// it in the periodic round.
    public func forwardsPushes(peers: Int, hasStaticPeers: Bool) -> Bool {
        guard forwardFanout(peers: peers) < peers else { return false }
        return fanout != nil || hasStaticPeers || peers > directMailPeers - 4
    }

    /// How many peers hear this node's new tree hash, in a cluster of `peers` other nodes.
    public func announceFanout(peers: Int) -> Int { max(0, min(announceFanout, peers)) }
}
