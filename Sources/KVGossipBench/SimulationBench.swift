import Foundation
import KVGossipCore
import KVGossipSimulation

/// The agent's gossip rules at fleet sizes, in simulated time (Docs/architecture.md §Simulation):
/// how fast one write reaches every node, what it costs, and how a healed partition converges.
enum SimulationBench {
    struct Figures {
        var p99Ms: [Double] = []
        var allMs: [Double?] = []
        var messagesPerNode: [Double] = []
        var pushesAndAnnouncementsPerNode: [Double] = []
        var bytesPerNode: [Double] = []
    }

    static func spread(nodes: Int, writes: Int, loss: Double, seed: UInt64) -> Figures {
        var config = SimulationConfig(nodes: nodes, seed: seed)
        config.network.loss = loss
        let sim = Simulation(config)
        sim.run(forMs: 2000)
        var f = Figures()
        var origins = SplitMix64(seed: seed ^ 0xABCD)
        for _ in 0..<writes {
            let s = sim.spreadOfOneWrite(from: Int.random(in: 0..<nodes, using: &origins))
            f.p99Ms.append(s.time(toReach: 0.99) ?? .infinity)
            f.allMs.append(s.time(toReach: 1))
            f.messagesPerNode.append(Double(s.traffic.messages) / Double(nodes))
            f.pushesAndAnnouncementsPerNode.append(Double(s.traffic.pushes + s.traffic.announcements) / Double(nodes))
            f.bytesPerNode.append(Double(s.traffic.bytes) / Double(nodes))
            sim.run(forMs: 500)
        }
        return f
    }

    static func healing(nodes: Int, writesPerSide: Int, seed: UInt64) -> Double? {
        let sim = Simulation(SimulationConfig(nodes: nodes, seed: seed))
        sim.run(forMs: 2000)
        return sim.partitionAndHeal(writesPerSide: writesPerSide).convergedMs
    }

    static func report(nodes: Int, writes: Int, quick: Bool) {
        let lnN = log(Double(nodes))
        for loss in [0.0, 0.1] {
            let start = Date()
            let f = spread(nodes: nodes, writes: writes, loss: loss, seed: UInt64(nodes))
            let worst = f.allMs.map { $0 ?? .infinity }.max() ?? .infinity
            let missed = f.allMs.filter { $0 == nil || $0! > (loss > 0 ? 2000 : 1000) }.count
            print(String(
                format: "simulated N = %d, %d writes, %@: 99%% of nodes p50 %.1f ms, max %.1f ms; 100%% p50 %.1f ms, max %.1f ms (%d writes over the goal of %@); per node per write: %.1f pushes+announcements, %.1f messages with answers and pulls (2·ln N = %.1f), %.0f bytes; %.1f s of real time",
                nodes, writes, loss > 0 ? "10% packet loss" : "no loss", median(f.p99Ms), f.p99Ms.max() ?? 0, median(f.allMs.map { $0 ?? .infinity }), worst,
                missed, loss > 0 ? "2 s" : "1 s", mean(f.pushesAndAnnouncementsPerNode), mean(f.messagesPerNode), 2 * lnN, mean(f.bytesPerNode),
                Date().timeIntervalSince(start)))
        }
        let start = Date()
        let healed = healing(nodes: nodes, writesPerSide: quick ? 100 : 500, seed: UInt64(nodes) + 1)
        print(String(
            format: "simulated N = %d: partition into halves, %d writes on each side, healed: one tree hash everywhere after %@ (goal: within 2 rounds, 60 s); %.1f s of real time",
            nodes, quick ? 100 : 500, healed.map { String(format: "%.2f s", $0 / 1000) } ?? "more than 300 s", Date().timeIntervalSince(start)))
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.isEmpty ? 0 : s[s.count / 2]
    }

    static func mean(_ xs: [Double]) -> Double { xs.isEmpty ? 0 : xs.reduce(0, +) / Double(xs.count) }
}
