import KVGossipCore

/// The tests' seeded generator is the core's: one implementation, so a seed means the same
/// sequence in a unit test, the simulator and the benchmark.
public typealias SeededRandom = SplitMix64
