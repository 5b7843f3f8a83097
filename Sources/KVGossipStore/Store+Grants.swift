import Foundation
import GRDB
import KVGossipCore

/// What `grants add` did with one grant.
public enum GrantAddOutcome: Sendable, Equatable {
    case added
    case duplicate
    case refused(Refusal)
}

extension Store {
    /// Keeps grants a node may need as proofs when it mints. A grant is stored only if it is for
    /// this cluster, well signed and not revoked; whether it chains to the root is checked when a
    /// record is minted with it, like any other pool.
    public func addGrants(_ grants: [Grant]) throws -> [GrantAddOutcome] {
        let cache = validator.search.cache
        // Refused after a failed sync of the log, like every other commit (`writing`).
        return try writing { db in
            try db.inCommittedTransaction {
                try grants.map { g -> GrantAddOutcome in
                    guard g.cluster == root else {
                        return .refused(Refusal(.noAuthority, "grant \(g.id.hex.prefix(16)) is for cluster \(g.cluster.fingerprint), this is \(root.fingerprint)"))
                    }
                    guard cache.signatureIsValid(g) else {
                        return .refused(Refusal(.badSignature, "grant \(g.id.hex.prefix(16)) signature does not verify"))
                    }
                    if isRevoked(g.id) {
                        return .refused(Refusal(.revoked, "grant \(g.id.hex.prefix(16)) is revoked"))
                    }
                    let existing = try Bool.fetchOne(db.cachedStatement(sql: "SELECT 1 FROM grants WHERE id = ?"), arguments: [Data(g.id.bytes)])
                    if existing == true { return .duplicate }
                    try db.cachedStatement(sql: "INSERT INTO grants (id, issuee, encoded) VALUES (?, ?, ?)")
                        .execute(arguments: [Data(g.id.bytes), Data(g.issuee.bytes), Data(g.encoded)])
                    return .added
                }
            }
        }
    }

    /// Every stored grant, revoked ones excluded.
    public func grants() throws -> [Grant] {
        try db.read { db in
            try Data.fetchAll(db.cachedStatement(sql: "SELECT encoded FROM grants ORDER BY id"))
                .map { try Grant(decoding: [UInt8]($0), limits: validator.limits) }
        }.filter { !isRevoked($0.id) }
    }
}
