import Foundation
import GRDB
import KVGossipCore

/// The Merkle summary's storage inside one open write transaction: internal nodes in
/// `merkle_nodes`, entries read straight from the records or revocations table by id range.
struct SQLiteMerkleBackend: MerkleBackend {
    enum Space: Int {
        case records = 0
        case revocations = 1

        var entriesSQL: String {
            switch self {
            case .records:
                "SELECT key_hash, entry_digest FROM records WHERE key_hash BETWEEN ? AND ? ORDER BY key_hash"
            case .revocations:
                "SELECT grant_id, digest FROM revocations WHERE grant_id BETWEEN ? AND ? ORDER BY grant_id"
            }
        }
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
            db, sql: space.entriesSQL, arguments: [Data(prefix.lowerBound), Data(prefix.upperBound)])
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

/// The database holds something this version never writes: refuse to go on rather than guess.
struct StoreCorruption: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
