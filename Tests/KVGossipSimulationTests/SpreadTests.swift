import Foundation
import KVGossipCore
import KVGossipSimulation
import Testing

/// The agent's gossip rules, at N = 50 over many seeds in simulated time (Docs/architecture.md
/// §Simulation): every write reaches every node quickly, also with lost packets, and a healed
/// partition converges. The bench runs the same at 1,000 nodes and prints the figures.
@Suite struct SpreadTests {
    static let seeds: [UInt64] = Array(1...30)

    static func cluster(seed: UInt64, loss: Double = 0) -> Simulation {
        var config = SimulationConfig(nodes: 50, seed: seed)
        config.network.loss = loss
        let sim = Simulation(config)
        sim.run(forMs: 1000)  // the start-up sessions settle
        return sim
    }

    /// Every node that receives a write new pushes it to the next node on the ring as well as to
    /// random ones, so a node the random pushes miss is reached along the ring, and announcements
    /// back that up: with no failures none is left for the periodic round. The runs replay
    /// exactly, so none of these may be late.
    static let lateWritesAllowed = 0

    @Test func aWriteReachesEveryNodeWithinASecond() {
        var late: [String] = []
        for seed in Self.seeds {
            let sim = Self.cluster(seed: seed)
            let spread = sim.spreadOfOneWrite(from: Int(seed % 50))
            #expect(spread.reachedMs.count == 50, "seed \(seed): reached \(spread.reachedMs.count) of 50")
            if (spread.time(toReach: 1) ?? .infinity) > 1000 { late.append("seed \(seed): 100% after \(spread.time(toReach: 1) ?? -1) ms") }
            // Per node and write: pushes (4 random, the next on the ring) and announcements (2)
            // together within 2·ln N, and every message, push answers and any pull sessions
            // included, within twice that.
            let t = spread.traffic
            #expect(Double(t.pushes + t.announcements) / 50 <= 2 * log(50), "seed \(seed): \(t)")
            #expect(Double(t.messages) / 50 <= 4 * log(50), "seed \(seed): \(t)")
        }
        #expect(late.count <= Self.lateWritesAllowed, "\(late)")
    }

    @Test func withTenPercentLossAWriteStillReachesEveryNodeWithinTwoSeconds() {
        var late: [String] = []
        for seed in Self.seeds {
            let sim = Self.cluster(seed: seed, loss: 0.1)
            let spread = sim.spreadOfOneWrite(from: 0)
            #expect(spread.reachedMs.count == 50, "seed \(seed): reached \(spread.reachedMs.count) of 50")
            if (spread.time(toReach: 1) ?? .infinity) > 2000 { late.append("seed \(seed): 100% after \(spread.time(toReach: 1) ?? -1) ms") }
        }
        #expect(late.count <= Self.lateWritesAllowed, "\(late)")
    }

    @Test(arguments: seeds.prefix(5)) func aHealedPartitionConvergesWithinTwoRounds(seed: UInt64) {
        let sim = Self.cluster(seed: seed)
        let healing = sim.partitionAndHeal(writesPerSide: 100)
        #expect(healing.convergedMs != nil && healing.convergedMs! <= 60_000, "converged after \(healing.convergedMs ?? -1) ms")
        #expect(sim.converged)
    }

    @Test func aRunReplaysExactlyFromItsSeed() {
        let a = Self.cluster(seed: 7).spreadOfOneWrite(from: 3)
        let b = Self.cluster(seed: 7).spreadOfOneWrite(from: 3)
        #expect(a.reachedMs == b.reachedMs && a.traffic == b.traffic)
    }
}

