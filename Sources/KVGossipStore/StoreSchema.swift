import Foundation
import GRDB

/// The SQLite schema, versioned through GRDB's migrator so later releases can upgrade a data
/// directory in place.
enum StoreSchema {
    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE meta (
                    name TEXT PRIMARY KEY NOT NULL,
                    value BLOB NOT NULL
                ) WITHOUT ROWID;

                -- One row per key: the winning record (value or tombstone), its Merkle position
                -- (key_hash, for lookups by position during sync) and its full encoding with the pool.
                CREATE TABLE records (
                    key TEXT PRIMARY KEY NOT NULL,
                    key_hash BLOB NOT NULL UNIQUE,
                    ts INTEGER NOT NULL,
                    kind INTEGER NOT NULL,
                    digest BLOB NOT NULL,
                    signer BLOB NOT NULL,
                    encoded BLOB NOT NULL
                );

                -- Which records cite which grant in their pool: the revocation cascade's index.
                CREATE TABLE record_grants (
                    key TEXT NOT NULL,
                    grant_id BLOB NOT NULL,
                    PRIMARY KEY (key, grant_id)
                ) WITHOUT ROWID;
                CREATE INDEX record_grants_by_grant ON record_grants (grant_id);

                -- Grants this node was given (`grants add`): proofs it puts in the records it mints.
                CREATE TABLE grants (
                    id BLOB PRIMARY KEY NOT NULL,
                    issuee BLOB NOT NULL,
                    encoded BLOB NOT NULL
                ) WITHOUT ROWID;

                CREATE TABLE revocations (
                    grant_id BLOB PRIMARY KEY NOT NULL,
                    digest BLOB NOT NULL,
                    encoded BLOB NOT NULL
                ) WITHOUT ROWID;

                -- The entries of the two Merkle summaries (space 0 records, 1 revocations),
                -- clustered by position so a leaf's entries are one sequential range read.
                CREATE TABLE merkle_entries (
                    space INTEGER NOT NULL,
                    id BLOB NOT NULL,
                    digest BLOB NOT NULL,
                    PRIMARY KEY (space, id)
                ) WITHOUT ROWID;

                -- Internal nodes of the two Merkle summaries.
                CREATE TABLE merkle_nodes (
                    space INTEGER NOT NULL,
                    prefix BLOB NOT NULL,
                    count INTEGER NOT NULL,
                    children BLOB NOT NULL,
                    PRIMARY KEY (space, prefix)
                ) WITHOUT ROWID;
                """)
        }
        // Tombstones alone, so `status` counts them (and the values, as all records less them)
        // without reading every row of a large tree.
        m.registerMigration("records-tombstones-index") { db in
            try db.execute(sql: "CREATE INDEX records_tombstones ON records (key) WHERE kind = 1")
        }
        return m
    }
}

/// Small named values kept in the `meta` table.
enum MetaName: String {
    case cluster
    case recordsRoot = "records_root"
    case revocationsRoot = "revocations_root"
    case lastMinted = "last_minted"
}

extension Database {
    func meta(_ name: MetaName) throws -> [UInt8]? {
        try Data.fetchOne(self.cachedStatement(sql: "SELECT value FROM meta WHERE name = ?"), arguments: [name.rawValue]).map { [UInt8]($0) }
    }

    func setMeta(_ name: MetaName, _ value: [UInt8]) throws {
        try cachedStatement(sql: "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value").execute(arguments: [name.rawValue, Data(value)])
    }
}
