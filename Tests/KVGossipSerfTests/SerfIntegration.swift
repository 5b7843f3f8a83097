import KVGossipSerf
import KVGossipTestTraits
import Testing

/// The integration suites share one agent budget on a small machine, so they run one at a time
/// (unit suites still run in parallel beside them).
@Suite(.serialized, .integration, .enabled(if: EmbeddedSerfConfiguration.findExecutable() != nil, "needs serf on PATH"))
enum SerfIntegration {}
