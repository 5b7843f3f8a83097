import Foundation
import KVGossipCore
import KVGossipNet

/// What a client shows an agent's TCP control listener, and what it expects of the agent there
/// (Docs/security.md §The TCP control listener): the cluster's root, the client's key, and the
/// grants chaining that key to the root.
public struct ControlCredentials: Sendable {
    public let cluster: PublicKey
    public let signingKey: SigningKey
    /// The chains that admit the key now (membership grants first, at most 8 grants in all).
    public let credential: [Grant]
    /// How the agent's log names this client.
    public let name: String

    /// Picks from `grants` the chains that admit `signingKey` in `cluster` now, and throws the
    /// refusal the agent would give when none does: a missing, foreign or expired grant is found
    /// before dialling. (Revocations are the agent's to know.)
    public init(cluster: PublicKey, signingKey: SigningKey, grants: [Grant], name: String = ControlCredentials.defaultName) throws(Refusal) {
        let search = ChainSearch(root: cluster, cache: GrantVerificationCache())
        let chosen = search.credential(
            of: signingKey.publicKey, atMs: LinkOpening.nowMs(), pool: grants, isRevoked: { _ in false },
            maxGrants: LinkIdentity.maxCredentialGrants)
        guard let chosen else {
            let shown = LinkIdentity(
                nodeKey: signingKey.publicKey, name: name, syncPort: 0, credential: grants, instance: [UInt8](repeating: 0, count: LinkIdentity.instanceBytes))
            throw Admission.refusal(of: shown, search: search, nowMs: LinkOpening.nowMs(), isRevoked: { _ in false })
                ?? Refusal(.noAuthority, "the grants given do not chain \(signingKey.publicKey.fingerprint) to the root \(cluster.fingerprint)")
        }
        self.cluster = cluster
        self.signingKey = signingKey
        credential = chosen
        self.name = name
    }

    /// `client@HOST`, with the kernel's host name (no name lookup on the way to a connection).
    public static var defaultName: String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "client" }
        return "client@" + String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// This client's side of one connection's handshake (a fresh instance id each time).
    func linkCredentials() -> LinkCredentials {
        LinkCredentials(signingKey: signingKey, name: name, syncPort: 0, credential: credential, instance: secureRandomBytes(LinkIdentity.instanceBytes))
    }

    /// Nil when the agent that answered is admitted to the cluster; otherwise why the client
    /// refuses it. Judged by its chain and the client's clock: a client does not know the
    /// cluster's revocations.
    func refusal(ofAgent agent: LinkIdentity) -> Refusal? {
        let search = ChainSearch(root: cluster, cache: GrantVerificationCache())
        return Admission.refusal(of: agent, search: search, nowMs: LinkOpening.nowMs(), isRevoked: { _ in false })
    }
}
