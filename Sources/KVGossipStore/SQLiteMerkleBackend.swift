import Foundation
import GRDB
import KVGossipCore

/// The Merkle summary's storage inside one open transaction: internal nodes in `merkle_nodes`;
/// entries read by id range from the records table's position index (records) or from
/// `merkle_entries` (revocations).
struct SQLiteMerkleBackend: MerkleBackend {
    enum Space: Int {
        case records = 0
        case revocations = 1
    }

    let db: Database
    let space: Space

    func internalNode(at prefix: NibblePath) throws -> MerkleInternalNode? {
        try DirectStatement(db, "SELECT count, children FROM merkle_nodes WHERE space = ? AND prefix = ?").firstRow({
            $0.int(space.rawValue)
            $0.blob(prefix.nibbles)
        }) { row in
            let blob = row.blob(1)
            guard blob.count == MerkleInternalNode.childCount * Hash256.byteCount else {
                throw StoreCorruption("the Merkle node at \(prefix) does not hold 16 hashes")
            }
            let children = (0..<MerkleInternalNode.childCount).map { i in
                Hash256(raw: UnsafeRawBufferPointer(rebasing: blob[i * Hash256.byteCount..<(i + 1) * Hash256.byteCount]))!
            }
            return MerkleInternalNode(count: Int(row.int(0)), children: children)
        }
    }

    func setInternalNode(_ node: MerkleInternalNode, at prefix: NibblePath) throws {
        var blob = [UInt8]()
        blob.reserveCapacity(MerkleInternalNode.childCount * Hash256.byteCount)
        for child in node.children { child.withUnsafeBytes { blob.append(contentsOf: $0) } }
        try DirectStatement(db, "INSERT OR REPLACE INTO merkle_nodes (space, prefix, count, children) VALUES (?, ?, ?, ?)").run {
            $0.int(space.rawValue)
            $0.blob(prefix.nibbles)
            $0.int(node.count)
            $0.blob(blob)
        }
    }

    func removeInternalNodes(atOrBelow prefix: NibblePath) throws {
        // Nibbles are 0...15, so every blob that starts with `prefix` sorts below prefix ‖ 0x10.
        try DirectStatement(db, "DELETE FROM merkle_nodes WHERE space = ? AND prefix >= ? AND prefix < ?").run {
            $0.int(space.rawValue)
            $0.blob(prefix.nibbles)
            $0.blob(prefix.nibbles + [0x10])
        }
    }

    func entries(under prefix: NibblePath) throws -> [MerkleEntry] {
        var out: [MerkleEntry] = []
        // Read the blobs in place: this runs for every leaf a batch touches, so copies add up.
        let select = switch space {
        case .records: "SELECT key_hash, entry_digest FROM records WHERE key_hash BETWEEN ? AND ? ORDER BY key_hash"
        case .revocations: "SELECT id, digest FROM merkle_entries WHERE space = 1 AND id BETWEEN ? AND ? ORDER BY id"
        }
        try DirectStatement(db, select).forEachRow({
            $0.blob(prefix.lowerBound)
            $0.blob(prefix.upperBound)
        }) { row in
            guard let id = row.hash(0), let digest = row.hash(1) else {
                throw StoreCorruption("a Merkle entry under \(prefix) is not 32 bytes")
            }
            out.append(MerkleEntry(id: id, digest: digest))
        }
        return out
    }
}

extension Database {
    /// Adds or replaces a revocation's summary entry (the caller folds the change into the trie).
    /// A record's entry is a column of its row, written with it.
    func setRevocationEntry(_ entry: MerkleEntry) throws {
        try DirectStatement(self, "INSERT OR REPLACE INTO merkle_entries (space, id, digest) VALUES (1, ?, ?)").run {
            $0.blob(entry.id)
            $0.blob(entry.digest)
        }
    }
}

/// The database holds something this version never writes: refuse to go on rather than guess.
struct StoreCorruption: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
