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

    /// The keys at these Merkle positions, skipping positions with none: read from the rows' key
    /// column alone, however large their records.
    public func keys(atKeyHashes ids: [Hash256]) throws -> [Key] {
        try db.read { db in
            try ids.compactMap { id in
                try String.fetchOne(db.cachedStatement(sql: "SELECT key FROM records WHERE key_hash = ?"), arguments: [Data(id.bytes)])
                    .map { try Key($0) }
            }
        }
    }

    /// The records at these positions, in order, skipping positions with none, up to `maxBytes` of
    /// encodings (`SyncLocalState.records(at:maxBytes:firstAnySize:)`). A record's size is read
    /// from its row before its bytes are: one that does not fit is never loaded.
    public func records(atKeyHashes ids: [Hash256], maxBytes: Int, firstAnySize: Bool) throws -> (records: [KVGossipCore.Record], consumed: Int) {
        try db.read { db in
            var found: [KVGossipCore.Record] = []
            var bytes = 0
            for (index, id) in ids.enumerated() {
                let room = found.isEmpty && firstAnySize ? Int64.max : Int64(max(0, maxBytes - bytes))
                // SQLite knows a blob's length from its row's header: the bytes of one that does
                // not fit are not read.
                let sql = "SELECT length(encoded), CASE WHEN length(encoded) <= ? THEN encoded END FROM records WHERE key_hash = ?"
                guard let row = try Row.fetchOne(db.cachedStatement(sql: sql), arguments: [room, Data(id.bytes)]) else { continue }
                guard let encoded = row[1] as Data? else { return (found, index) }
                found.append(try KVGossipCore.Record(decoding: [UInt8](encoded), limits: Limits(maxValueBytes: Int(UInt32.max))))
                bytes += row[0] as Int
            }
            return (found, ids.count)
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
