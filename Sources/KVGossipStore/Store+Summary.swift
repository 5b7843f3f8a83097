import Foundation
import GRDB
import KVGossipCore

extension Store {
    /// The summary at a prefix, as a sync peer asks for it (read from one consistent snapshot).
    public func summaryView(_ query: ViewQuery) throws -> MerkleNodeView {
        try db.read { db in
            var backend = SQLiteMerkleBackend(db: db, space: query.space == .records ? .records : .revocations)
            return query.entries
                ? try MerkleReader.entriesView(under: query.prefix, in: &backend)
                : try MerkleReader.view(at: query.prefix, in: &backend)
        }
    }

    /// The records at these Merkle positions (key hashes), skipping positions with none.
    public func records(atKeyHashes ids: [Hash256]) throws -> [KVGossipCore.Record] {
        try db.read { db in
            try ids.compactMap { id in
                try Data.fetchOne(db.cachedStatement(sql: "SELECT encoded FROM records WHERE key_hash = ?"), arguments: [Data(id.bytes)])
                    .map { try KVGossipCore.Record(decoding: [UInt8]($0), limits: Limits(maxValueBytes: Int(UInt32.max))) }
            }
        }
    }

    /// The stored revocations of these grants, skipping grants with none.
    public func revocations(for grantIDs: [Hash256]) throws -> [Revocation] {
        try db.read { db in
            try Store.fetchRevocations(db, grantIDs, limits: validator.limits)
        }
    }
}

extension Store {
    /// How many entries lie at or below `prefix` in a summary: an internal node's stored count, or
    /// a leaf's entries (at most the leaf limit), without reading the subtree.
    public func summaryCount(_ space: SummarySpace, under prefix: NibblePath) throws -> Int {
        try db.read { db in
            let backend = SQLiteMerkleBackend(db: db, space: space == .records ? .records : .revocations)
            if let node = try backend.internalNode(at: prefix) { return node.count }
            return try backend.entries(under: prefix).count
        }
    }
}
