import Foundation
import KVGossipCore

/// The key a client signs its own records with, and the grants that prove it may write them.
///
/// The agent verifies a client-signed record exactly like one from a peer (Docs/contract.md §Authority), so
/// the proofs must hold a chain from the cluster's root to this key whose every grant matches the key being
/// written.
public struct ClientIdentity: Sendable {
    /// The Ed25519 key records are signed with.
    public let signingKey: SigningKey
    /// Grants forming the chain root → … → this key; carried in each record's pool.
    public let proofs: [Grant]

    /// An identity from keys already in memory.
    public init(signingKey: SigningKey, proofs: [Grant] = []) {
        self.signingKey = signingKey
        self.proofs = proofs
    }

    /// Loads a secret key file (`kvgossip keygen`, mode 0600) and grant files (`kvgossip grant`).
    /// Throws ``KVClientError`` with reason `malformed` for an unreadable or invalid file.
    public init(keyFile: String, proofFiles: [String] = []) throws {
        let contents: String
        do { contents = try String(contentsOfFile: keyFile, encoding: .utf8) } catch {
            throw KVClientError(.malformed, "cannot read the key file \(keyFile): \(error.localizedDescription)")
        }
        let mode = ((try? FileManager.default.attributesOfItem(atPath: keyFile)[.posixPermissions]) as? NSNumber)?.uint32Value ?? 0o600
        do { signingKey = try SecretKeyFile.parse(contents, mode: mode, path: keyFile) } catch {
            throw KVClientError(.malformed, error.description)
        }
        var grants: [Grant] = []
        for path in proofFiles {
            do {
                let text = try String(contentsOfFile: path, encoding: .utf8)
                for block in try Armor.parse(text) where block.kind == .grant {
                    grants.append(try Grant(decoding: block.bytes))
                }
            } catch let refusal as Refusal {
                throw KVClientError(KVClientError.Reason(rawValue: refusal.reason.rawValue), "\(path): \(refusal.detail)")
            } catch {
                throw KVClientError(.malformed, "cannot read the grant file \(path): \(error.localizedDescription)")
            }
        }
        proofs = grants
    }

    /// The signer's public key text (`ed25519:…`).
    public var publicKey: String { signingKey.publicKey.text }
}
