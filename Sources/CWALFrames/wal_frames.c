// A VFS over SQLite's default one that gathers the frames SQLite appends to a WAL file, each as two
// calls (a 24-byte header, then the page), and writes them in one call once the frame that
// commits the transaction is complete. Only appends are held: a write at or past the end of what
// this handle has written since the log's header. Anything else (a frame rewritten in place, the
// headers SQLite rewrites when it recomputes checksums, the log's header) is written at once,
// after what is held. Every other operation on the WAL file writes what is held first. So the
// commit's data is in the file before the write of its last frame returns, as without this VFS
// (SQLite updates its WAL index only after that), and a read, sync, truncation or close sees every
// byte.
#include "CWALFrames.h"
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define FRAME_HEADER 24
#define WAL_HEADER 32
// The default VFS writes at most this much in one call: it masks a write's length to 17 bits,
// so a longer one is cut short and fails as "disk full".
#define MAX_HELD 0x1ffff

typedef struct {
    sqlite3_file base;
    sqlite3_file *real;
    unsigned char *held;
    int heldBytes;
    sqlite3_int64 heldStart;
    // The end of what this handle has written or holds, since the log's header was last written.
    sqlite3_int64 end;
    // The last write was the appended header of a frame that commits: its page completes the commit.
    int commitPending;
} WalFile;

static sqlite3_vfs *realVfs;
static sqlite3_vfs vfs;
static sqlite3_io_methods walMethods;
static atomic_llong writeCalls, framesGiven;

static int registerOnce(void);

static int flush(WalFile *f) {
    if (f->heldBytes == 0) return SQLITE_OK;
    int rc = f->real->pMethods->xWrite(f->real, f->held, f->heldBytes, f->heldStart);
    atomic_fetch_add(&writeCalls, 1);
    f->heldBytes = 0;
    return rc;
}

static unsigned get4(const unsigned char *p) { return (unsigned)p[0] << 24 | (unsigned)p[1] << 16 | (unsigned)p[2] << 8 | p[3]; }

static int writeNow(WalFile *f, const void *data, int amount, sqlite3_int64 offset) {
    atomic_fetch_add(&writeCalls, 1);
    return f->real->pMethods->xWrite(f->real, data, amount, offset);
}

static int walWrite(sqlite3_file *file, const void *data, int amount, sqlite3_int64 offset) {
    WalFile *f = (WalFile *)file;
    int rc;
    // The log's header begins a new pass through the file, from the top.
    if (offset < WAL_HEADER) f->end = 0;
    int appends = offset >= WAL_HEADER && offset >= f->end && amount <= MAX_HELD;
    if (f->heldBytes > 0 && (!appends || offset != f->heldStart + f->heldBytes || f->heldBytes + amount > MAX_HELD)) {
        if ((rc = flush(f)) != SQLITE_OK) return rc;
    }
    if (offset + amount > f->end) f->end = offset + amount;
    int isHeader = appends && amount == FRAME_HEADER;
    int completesCommit = appends && !isHeader && f->commitPending;
    // Bytes 4–7 of a frame's header: the database's size after a commit, 0 in other frames.
    f->commitPending = isHeader && get4((const unsigned char *)data + 4) != 0;
    if (isHeader) atomic_fetch_add(&framesGiven, 1);
    if (!appends) return writeNow(f, data, amount, offset);
    if (!f->held) {
        f->held = malloc(MAX_HELD);
        if (!f->held) {
            // No memory to hold anything: written as it comes, which SQLite did before. A commit's
            // header written so leaves `commitPending` set, for a page that may yet be held.
            return writeNow(f, data, amount, offset);
        }
    }
    if (f->heldBytes == 0) f->heldStart = offset;
    memcpy(f->held + f->heldBytes, data, amount);
    f->heldBytes += amount;
    return completesCommit ? flush(f) : SQLITE_OK;
}

static int walClose(sqlite3_file *file) {
    WalFile *f = (WalFile *)file;
    int rc = flush(f);
    int closed = f->real->pMethods->xClose(f->real);
    free(f->held);
    f->held = NULL;
    return rc != SQLITE_OK ? rc : closed;
}

#define FLUSHED(f) WalFile *f = (WalFile *)file; int frc = flush(f); if (frc != SQLITE_OK) return frc;

static int walRead(sqlite3_file *file, void *data, int amount, sqlite3_int64 offset) {
    FLUSHED(f) return f->real->pMethods->xRead(f->real, data, amount, offset);
}
static int walTruncate(sqlite3_file *file, sqlite3_int64 size) { FLUSHED(f) return f->real->pMethods->xTruncate(f->real, size); }
static int walSync(sqlite3_file *file, int flags) { FLUSHED(f) return f->real->pMethods->xSync(f->real, flags); }
static int walFileSize(sqlite3_file *file, sqlite3_int64 *size) { FLUSHED(f) return f->real->pMethods->xFileSize(f->real, size); }
static int walLock(sqlite3_file *file, int lock) { FLUSHED(f) return f->real->pMethods->xLock(f->real, lock); }
static int walUnlock(sqlite3_file *file, int lock) { FLUSHED(f) return f->real->pMethods->xUnlock(f->real, lock); }
static int walCheckReservedLock(sqlite3_file *file, int *out) { FLUSHED(f) return f->real->pMethods->xCheckReservedLock(f->real, out); }
static int walFileControl(sqlite3_file *file, int op, void *arg) { FLUSHED(f) return f->real->pMethods->xFileControl(f->real, op, arg); }
static int walSectorSize(sqlite3_file *file) { WalFile *f = (WalFile *)file; return f->real->pMethods->xSectorSize(f->real); }
static int walDeviceCharacteristics(sqlite3_file *file) { WalFile *f = (WalFile *)file; return f->real->pMethods->xDeviceCharacteristics(f->real); }
static int walShmMap(sqlite3_file *file, int page, int size, int extend, void volatile **out) { FLUSHED(f) return f->real->pMethods->xShmMap(f->real, page, size, extend, out); }
static int walShmLock(sqlite3_file *file, int offset, int n, int flags) { FLUSHED(f) return f->real->pMethods->xShmLock(f->real, offset, n, flags); }
static void walShmBarrier(sqlite3_file *file) { WalFile *f = (WalFile *)file; flush(f); f->real->pMethods->xShmBarrier(f->real); }
static int walShmUnmap(sqlite3_file *file, int deleteFlag) { FLUSHED(f) return f->real->pMethods->xShmUnmap(f->real, deleteFlag); }
static int walFetch(sqlite3_file *file, sqlite3_int64 offset, int amount, void **out) { FLUSHED(f) return f->real->pMethods->xFetch(f->real, offset, amount, out); }
static int walUnfetch(sqlite3_file *file, sqlite3_int64 offset, void *p) { WalFile *f = (WalFile *)file; return f->real->pMethods->xUnfetch(f->real, offset, p); }

static int vfsOpen(sqlite3_vfs *self, sqlite3_filename name, sqlite3_file *file, int flags, int *outFlags) {
    (void)self;
    if (!(flags & SQLITE_OPEN_WAL)) return realVfs->xOpen(realVfs, name, file, flags, outFlags);
    WalFile *f = (WalFile *)file;
    memset(f, 0, sizeof *f);
    f->real = (sqlite3_file *)&f[1];
    int rc = realVfs->xOpen(realVfs, name, f->real, flags, outFlags);
    if (rc != SQLITE_OK) {
        f->base.pMethods = NULL;
        return rc;
    }
    f->base.pMethods = &walMethods;
    return SQLITE_OK;
}

static int vfsDelete(sqlite3_vfs *s, const char *n, int d) { (void)s; return realVfs->xDelete(realVfs, n, d); }
static int vfsAccess(sqlite3_vfs *s, const char *n, int fl, int *o) { (void)s; return realVfs->xAccess(realVfs, n, fl, o); }
static int vfsFullPathname(sqlite3_vfs *s, const char *n, int m, char *o) { (void)s; return realVfs->xFullPathname(realVfs, n, m, o); }
static void *vfsDlOpen(sqlite3_vfs *s, const char *n) { (void)s; return realVfs->xDlOpen(realVfs, n); }
static void vfsDlError(sqlite3_vfs *s, int n, char *m) { (void)s; realVfs->xDlError(realVfs, n, m); }
static void (*vfsDlSym(sqlite3_vfs *s, void *h, const char *n))(void) { (void)s; return realVfs->xDlSym(realVfs, h, n); }
static void vfsDlClose(sqlite3_vfs *s, void *h) { (void)s; realVfs->xDlClose(realVfs, h); }
static int vfsRandomness(sqlite3_vfs *s, int n, char *o) { (void)s; return realVfs->xRandomness(realVfs, n, o); }
static int vfsSleep(sqlite3_vfs *s, int us) { (void)s; return realVfs->xSleep(realVfs, us); }
static int vfsCurrentTime(sqlite3_vfs *s, double *o) { (void)s; return realVfs->xCurrentTime(realVfs, o); }
static int vfsGetLastError(sqlite3_vfs *s, int n, char *o) { (void)s; return realVfs->xGetLastError(realVfs, n, o); }
static int vfsCurrentTimeInt64(sqlite3_vfs *s, sqlite3_int64 *o) { (void)s; return realVfs->xCurrentTimeInt64(realVfs, o); }
static int vfsSetSystemCall(sqlite3_vfs *s, const char *n, sqlite3_syscall_ptr p) { (void)s; return realVfs->xSetSystemCall(realVfs, n, p); }
static sqlite3_syscall_ptr vfsGetSystemCall(sqlite3_vfs *s, const char *n) { (void)s; return realVfs->xGetSystemCall(realVfs, n); }
static const char *vfsNextSystemCall(sqlite3_vfs *s, const char *n) { (void)s; return realVfs->xNextSystemCall(realVfs, n); }

static pthread_mutex_t registering = PTHREAD_MUTEX_INITIALIZER;
static int registered;

int kvg_wal_frames_register(void) {
    pthread_mutex_lock(&registering);
    int rc = registered ? SQLITE_OK : registerOnce();
    if (rc == SQLITE_OK) registered = 1;
    pthread_mutex_unlock(&registering);
    return rc;
}

// The default VFS's file methods are version 3 (shared memory and memory-mapped reads included);
// the WAL file's methods forward each of them.
static int registerOnce(void) {
    realVfs = sqlite3_vfs_find(NULL);
    if (!realVfs) return SQLITE_ERROR;
    walMethods = (sqlite3_io_methods){
        .iVersion = 3, .xClose = walClose, .xRead = walRead, .xWrite = walWrite, .xTruncate = walTruncate,
        .xSync = walSync, .xFileSize = walFileSize, .xLock = walLock, .xUnlock = walUnlock,
        .xCheckReservedLock = walCheckReservedLock, .xFileControl = walFileControl, .xSectorSize = walSectorSize,
        .xDeviceCharacteristics = walDeviceCharacteristics, .xShmMap = walShmMap, .xShmLock = walShmLock,
        .xShmBarrier = walShmBarrier, .xShmUnmap = walShmUnmap, .xFetch = walFetch, .xUnfetch = walUnfetch,
    };
    vfs = (sqlite3_vfs){
        .iVersion = realVfs->iVersion, .szOsFile = (int)sizeof(WalFile) + realVfs->szOsFile, .mxPathname = realVfs->mxPathname,
        .zName = "kvgossip-wal-frames", .xOpen = vfsOpen, .xDelete = vfsDelete, .xAccess = vfsAccess,
        .xFullPathname = vfsFullPathname, .xDlOpen = vfsDlOpen, .xDlError = vfsDlError, .xDlSym = vfsDlSym,
        .xDlClose = vfsDlClose, .xRandomness = vfsRandomness, .xSleep = vfsSleep, .xCurrentTime = vfsCurrentTime,
        .xGetLastError = vfsGetLastError, .xCurrentTimeInt64 = vfsCurrentTimeInt64, .xSetSystemCall = vfsSetSystemCall,
        .xGetSystemCall = vfsGetSystemCall, .xNextSystemCall = vfsNextSystemCall,
    };
    return sqlite3_vfs_register(&vfs, 1);
}

long long kvg_wal_frames_writes(void) { return atomic_load(&writeCalls); }
long long kvg_wal_frames_frames(void) { return atomic_load(&framesGiven); }
