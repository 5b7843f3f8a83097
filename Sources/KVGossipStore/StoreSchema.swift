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
                -- (Since "records-entry-digest" the records' entries live in the records table.)
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
        // Earlier versions of keys, local to this host (Docs/history.md): the signed records as
        // they were stored, in arrival order (`seq`, so the byte budget lets the oldest go first),
        // found per key in version order. Never part of sync or of the tree hash.
        m.registerMigration("history") { db in
            try db.execute(sql: """
                CREATE TABLE history (
                    seq INTEGER PRIMARY KEY,
                    key TEXT NOT NULL,
                    ts INTEGER NOT NULL,
                    kind INTEGER NOT NULL,
                    digest BLOB NOT NULL,
                    size INTEGER NOT NULL,
                    encoded BLOB NOT NULL
                );
                CREATE UNIQUE INDEX history_by_key ON history (key, ts, kind, digest);
                """)
        }
        // The records' summary entries live in the records table: one index by position,
        // (key_hash, entry_digest), answers both the lookups by position during sync and the
        // summary's leaf reads. Before, a UNIQUE(key_hash) index and a merkle_entries row (space 0)
        // were two b-trees written at random positions for every record, about a third of the
        // pages a sync batch wrote to the WAL (Docs/architecture.md §Durability).
        m.registerMigration("records-entry-digest") { db in
            try db.execute(sql: """
                CREATE TABLE records_new (
                    key TEXT PRIMARY KEY NOT NULL,
                    key_hash BLOB NOT NULL,
                    entry_digest BLOB NOT NULL,
                    ts INTEGER NOT NULL,
                    kind INTEGER NOT NULL,
                    digest BLOB NOT NULL,
                    signer BLOB NOT NULL,
                    encoded BLOB NOT NULL
                );
                INSERT INTO records_new (key, key_hash, entry_digest, ts, kind, digest, signer, encoded)
                    SELECT r.key, r.key_hash, e.digest, r.ts, r.kind, r.digest, r.signer, r.encoded
                    FROM records r JOIN merkle_entries e ON e.space = 0 AND e.id = r.key_hash;
                """)
            let moved = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM records_new") ?? 0
            let held = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM records") ?? 0
            guard moved == held else {
                throw StoreCorruption("\(held - moved) of \(held) records have no summary entry")
            }
            try db.execute(sql: """
                DROP TABLE records;
                ALTER TABLE records_new RENAME TO records;
                CREATE INDEX records_tombstones ON records (key) WHERE kind = 1;
                CREATE INDEX records_by_position ON records (key_hash, entry_digest);
                DELETE FROM merkle_entries WHERE space = 0;
                """)
        }
        // How many earlier versions history holds per key, kept in the key's row so a replacement
        // walks the key's versions only near its bound (Docs/history.md §Bounds). Rows from before
        // hold NULL, "not known": their key's next version in history counts them.
        m.registerMigration("records-history-versions") { db in
            try db.execute(sql: "ALTER TABLE records ADD COLUMN history_versions INTEGER")
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
    /// Bytes (record encodings) held in the history table, kept with every change to it.
    case historyBytes = "history_bytes"
}

// Through SQLite's C API (`DirectStatement`): every commit stores a summary root and reads both
// back for the tree hash, and every mint reads and stores its last timestamp; GRDB's boxed
// arguments took a few percent of a commit's CPU there (profiled on the agents of
// `kvgossip-bench etcd`).
extension Database {
    func meta(_ name: MetaName) throws -> [UInt8]? {
        let value = try DirectStatement(self, "SELECT value FROM meta WHERE name = ?").firstRow({ $0.text(name.rawValue) }) { row in
            row.isNull(0) ? nil : [UInt8](row.blob(0))
        }
        return value ?? nil
    }

    func setMeta(_ name: MetaName, _ value: [UInt8]) throws {
        try DirectStatement(self, "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value").run {
            $0.text(name.rawValue)
            $0.blob(value)
        }
    }
}
