import Foundation
import GRDB
import KVGossipCore

/// What applying a revocation did.
public enum RevocationApplyOutcome: Sendable, Equatable {
    /// Stored; these keys lost their last valid chain and were unset, these kept a pruned pool.
    case accepted(unset: [Key], pruned: [Key])
    case duplicate
    case refused(Refusal)
}

extension Store {
    /// Verifies and stores a revocation permanently, then runs the cascade (Docs/contract.md §Revocation)
    /// over every record whose pool cites the grant — all in one transaction.
    public func apply(_ revocation: Revocation) throws -> RevocationApplyOutcome {
        try apply(revocations: [revocation])[0]
    }

    /// Verifies a batch of revocations (signatures and proofs outside the transaction), then stores
    /// the valid ones and runs their cascades in ONE transaction: one sync at the batch's end.
    public func apply(revocations batch: [Revocation]) throws -> [RevocationApplyOutcome] {
        let search = validator.search
        let verdicts: [Refusal?] = batch.map { r -> Refusal? in
            do throws(Refusal) {
                try r.verify(using: search)
                return nil
            } catch {
                return error
            }
        }
        guard verdicts.contains(where: { $0 == nil }) else { return verdicts.map { .refused($0!) } }
        return try commit { db, tx in
            try zip(batch, verdicts).map { revocation, refusal in
                if let refusal { return .refused(refusal) }
                return try store(revocation, db: db, tx: &tx)
            }
        }
    }

    /// Stores one verified revocation and runs its cascade inside the caller's transaction.
    private func store(_ revocation: Revocation, db: Database, tx: inout PendingTransaction) throws -> RevocationApplyOutcome {
        let idData = Data(revocation.grantID.bytes)
        if let existing = try Data.fetchOne(db.cachedStatement(sql: "SELECT digest FROM revocations WHERE grant_id = ?"), arguments: [idData]) {
            // One revocation per grant; the smaller digest is kept so every node keeps the same one.
            guard revocation.digest < Hash256(bytes: [UInt8](existing))! else { return .duplicate }
            try db.cachedStatement(sql: "UPDATE revocations SET digest = ?, encoded = ? WHERE grant_id = ?").execute(arguments: [Data(revocation.digest.bytes), Data(revocation.encoded), idData])
            try db.setRevocationEntry(SummaryEntries.entry(for: revocation))
            tx.revocationChanges.add(revocation.grantID, delta: 0)
            return .duplicate
        }
        try db.cachedStatement(sql: "INSERT INTO revocations (grant_id, digest, encoded) VALUES (?, ?, ?)").execute(arguments: [idData, Data(revocation.digest.bytes), Data(revocation.encoded)])
        try db.setRevocationEntry(SummaryEntries.entry(for: revocation))
        tx.revocationChanges.add(revocation.grantID, delta: 1)
        tx.published.append(.revocation(revocation))
        // Marked revoked before this transaction commits, so a record transaction that runs
        // right after it cannot miss it. If this transaction fails, the id stays marked until
        // restart: refusing too much for a moment is the safe side.
        let revoked = state.withLock {
            $0.revoked.insert(revocation.grantID)
            return $0.revoked
        }
        var unset: [Key] = []
        var pruned: [Key] = []
        let keys = try String.fetchAll(db.cachedStatement(sql: "SELECT key FROM record_grants WHERE grant_id = ? ORDER BY key"), arguments: [idData])
        for path in keys {
            guard let key = try? Key(path), let record = try Store.fetchRecord(db, key: key),
                let row = try Store.fetchStoredVersion(db, key: key)
            else { continue }
            switch RevocationCascade.apply(to: record, validator: validator, isRevoked: revoked.contains) {
            case .keep(let kept):
                try tx.write(kept, db: db, over: row)
                pruned.append(key)
            case .unset:
                // The unset record stays in this host's history, where `log` shows it revoked.
                // The row goes, and its count with it: a later row for the key counts again.
                _ = try tx.keepCurrentInHistory(key, row: row, db: db)
                // The row holds the key's summary entry, so deleting it removes the entry.
                try db.cachedStatement(sql: "DELETE FROM records WHERE key = ?").execute(arguments: [path])
                try db.cachedStatement(sql: "DELETE FROM record_grants WHERE key = ?").execute(arguments: [path])
                tx.recordChanges.add(SummaryEntries.keyHash(key), delta: -1)
                tx.published.append(.unset(key, previous: record.version))
                unset.append(key)
            }
        }
        if !unset.isEmpty {
            logger.info("revocation unset keys", metadata: [
                "grant": "\(revocation.grantID.hex.prefix(16))", "keys": "\(unset.map(\.path))",
            ])
        }
        return .accepted(unset: unset, pruned: pruned)
    }
}
