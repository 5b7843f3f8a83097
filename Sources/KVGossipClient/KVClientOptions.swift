import KVGossipCore
import Logging

/// Tunables of a ``KVClient``. The defaults suit a service watching its configuration.
public struct KVClientOptions: Sendable {
    /// How long a key's interest (its watch and its cached value) outlives its last subscription.
    /// A subscription made within the delay reuses the interest with no new fetch. Default 5 s.
    public var cullDelay: Duration = .seconds(5)
    /// Reconnection pacing.
    public var backoff = Backoff()
    /// How long a request (get, list, writes) waits for a connection, and then again how long it
    /// waits for the answer. An unanswered request also drops the connection, since an agent that
    /// does not answer is not one to keep watching through. Default 10 s.
    public var callTimeout: Duration = .seconds(10)
    /// How often an idle-looking connection is checked with a ping (nil: never). A watch gives no
    /// sign when its agent hangs or the network path silently breaks; a ping left unanswered for
    /// `callTimeout` drops the connection and the client fails over. Default 5 s.
    public var heartbeat: Duration? = .seconds(5)
    /// The default signer of ``KVClient/put(_:value:as:)`` and ``KVClient/delete(_:as:)``, and the
    /// key (with the grants chaining it to the root) this client proves on TCP endpoints.
    public var identity: ClientIdentity?
    /// The cluster id (root public key): every record an agent sends is verified against it, and
    /// client-signed records are bound to it (Docs/client.md §Verification). When nil it is asked
    /// (with `status`) of the first agent reached over a Unix socket and pinned; over TCP it is
    /// never asked, so a client of TCP endpoints needs it set, or it fails with `no-root` (an agent
    /// there is also refused unless its node key chains to this root).
    public var cluster: PublicKey?
    /// The bounds records are judged by: sizes, and `maxSkewMs`, how far ahead of this host's
    /// clock a record may be dated (a received record further ahead is not delivered, and no
    /// record is signed further ahead). Keep them equal to the agents' (`--max-skew`).
    public var limits = Limits.default
    /// Where connection changes and dropped answers are logged.
    public var logger = Logger(label: "kvgossip.client")

    /// The defaults.
    public init() {}
}
