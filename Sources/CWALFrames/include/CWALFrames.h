#ifndef KVGOSSIP_WAL_FRAMES_H
#define KVGOSSIP_WAL_FRAMES_H

/// Registers, as SQLite's default, a VFS that writes each commit's WAL frames in one call
/// (Docs/architecture.md §Durability). Idempotent. SQLITE_OK or an SQLite error code.
int kvg_wal_frames_register(void);

/// Write calls the VFS made to WAL files, and frames it was given (for tests).
long long kvg_wal_frames_writes(void);
long long kvg_wal_frames_frames(void);

#endif
