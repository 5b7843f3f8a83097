import Foundation
import GRDB
import KVGossipCore

/// The Merkle summary's storage inside one open write transaction: internal nodes in
/// `merkle_nodes`, entries read straight from the records or revocations table by id range.
struct SQLiteMerkleBackend: MerkleBackend {
    enum Space: Int {
        case records = 0
        case revocations = 1
    }

    let db: Database
    let space: Space

    func internalNode(at prefix: NibblePath) throws -> MerkleInternalNode? {
        guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT count, children FROM merkle_nodes WHERE space = ? AND prefix = ?"),
            arguments: [space.rawValue, Data(prefix.nibbles)])
        else { return nil }
        let blob: Data = row["children"]
        let bytes = [UInt8](blob)
        let children = (0..<16).map { i in Hash256(bytes: Array(bytes[i * 32..<(i + 1) * 32]))! }
        return MerkleInternalNode(count: row["count"], children: children)
    }

    func setInternalNode(_ node: MerkleInternalNode, at prefix: NibblePath) throws {
        var blob = [UInt8]()
        blob.reserveCapacity(16 * 32)
        for child in node.children { blob.append(contentsOf: child.bytes) }
        try db.cachedStatement(sql: "INSERT OR REPLACE INTO merkle_nodes (space, prefix, count, children) VALUES (?, ?, ?, ?)").execute(arguments: [space.rawValue, Data(prefix.nibbles), node.count, Data(blob)])
    }

    func removeInternalNodes(atOrBelow prefix: NibblePath) throws {
        // Nibbles are 0...15, so every blob that starts with `prefix` sorts below prefix ‖ 0x10.
        try db.cachedStatement(sql: "DELETE FROM merkle_nodes WHERE space = ? AND prefix >= ? AND prefix < ?").execute(arguments: [space.rawValue, Data(prefix.nibbles), Data(prefix.nibbles + [0x10])])
    }

    func entries(under prefix: NibblePath) throws -> [MerkleEntry] {
        let rows = try Row.fetchCursor(
            db.cachedStatement(sql: "SELECT id, digest FROM merkle_entries WHERE space = ? AND id BETWEEN ? AND ? ORDER BY id"),
            arguments: [space.rawValue, Data(prefix.lowerBound), Data(prefix.upperBound)])
        var out: [MerkleEntry] = []
        // Read the blobs in place: this runs for every leaf a batch touches, so copies add up.
        while let row = try rows.next() {
            let id = try row.withUnsafeData(atIndex: 0) { Hash256(bytes: [UInt8]($0 ?? Data())) }
            let digest = try row.withUnsafeData(atIndex: 1) { Hash256(bytes: [UInt8]($0 ?? Data())) }
            guard let id, let digest else { throw StoreCorruption("a Merkle entry under \(prefix) is not 32 bytes") }
            out.append(MerkleEntry(id: id, digest: digest))
        }
        return out
    }
}

extension Database {
    /// Adds or replaces the summary entry at `entry.id` (the caller folds the change into the trie).
    func setSummaryEntry(_ entry: MerkleEntry, in space: SQLiteMerkleBackend.Space) throws {
        try cachedStatement(sql: "INSERT OR REPLACE INTO merkle_entries (space, id, digest) VALUES (?, ?, ?)")
            .execute(arguments: [space.rawValue, Data(entry.id.bytes), Data(entry.digest.bytes)])
    }

    func removeSummaryEntry(_ id: Hash256, in space: SQLiteMerkleBackend.Space) throws {
        try cachedStatement(sql: "DELETE FROM merkle_entries WHERE space = ? AND id = ?").execute(arguments: [space.rawValue, Data(id.bytes)])
    }
}

/// The database holds something this version never writes: refuse to go on rather than guess.
struct StoreCorruption: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
