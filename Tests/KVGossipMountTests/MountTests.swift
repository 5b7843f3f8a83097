import KVGossipTestTraits
import Testing

/// Every mount test runs alone: each one mounts a real filesystem and runs real programs, and on
/// two cores parallel mounts only make timings noisy.
@Suite(.serialized, .integration) struct MountTests {}
