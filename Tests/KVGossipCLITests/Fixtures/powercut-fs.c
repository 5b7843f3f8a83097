/*
 * powercut-fs: an in-memory FUSE filesystem that behaves like a disk with a volatile write cache,
 * so a test can cut the power under a program and see what the program had really made durable.
 *
 * The model (PowerCutTests states it too):
 * - A regular file has two contents: `current`, what reads see, and `durable`, what the disk holds
 *   after a power cut. write, truncate and ftruncate change `current` only (its length included);
 *   fsync and fdatasync of the file copy `current` to `durable`. Nothing else makes data durable.
 * - Metadata is durable at once: directories, creates, unlinks, renames, modes, owners and times
 *   survive a cut as they were. The test is about file data; a program that also needs a created
 *   file's name to survive syncs its directory, which this model does not check.
 * - Writing "cut" to the control file /.powercut cuts the power, in the filesystem's one thread, so
 *   between two operations: every file's `current` becomes its `durable` content, and from then on
 *   the disk is gone: every operation on its files and directories fails with EIO (getattr, flush
 *   and release still answer, so the kernel can let go of a dead program's files) until "on" is
 *   written there. The write returns once the cut is done. Writing "arm" instead makes the next
 *   fsync or fdatasync of any file cut the power in place of syncing (it fails with EIO): a cut in
 *   the middle of a commit, after its data was written and before it was synced.
 * - Reading /.powercut reports "cuts=N dropped=BYTES files=F open=HANDLES dead=0|1 armed=0|1":
 *   BYTES and F are what the last cut threw
 *   away (bytes that differed between `current` and `durable`, and in how many files), HANDLES the
 *   data files open now (the control file not counted). Each cut is also reported on standard
 *   output, file by file.
 *
 * Whatever SQLite in WAL mode needs works: a shared writable mmap of the -shm file goes through the
 * kernel's page cache (so no direct_io on data files), and POSIX and flock locks are left to the
 * kernel, which handles them locally when the filesystem has no lock operations.
 *
 * Build: cc -O1 -o powercut-fs powercut-fs.c $(pkg-config --cflags --libs fuse3)
 * Run:   powercut-fs -f -s -o default_permissions MOUNTPOINT     (unmount: fusermount3 -u MOUNTPOINT)
 */
#define FUSE_USE_VERSION 31
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>

#define CONTROL "/.powercut"

struct blob {
    char *bytes;
    size_t length;
};

struct node {
    char *path; /* absolute, "/" for the root */
    mode_t mode;
    uid_t uid;
    gid_t gid;
    struct timespec atime, mtime, ctime;
    struct blob current, durable; /* regular files only */
};

static struct node **nodes;
static size_t count;
static int dead, armed, cuts, open_handles;
static long long last_dropped, last_files;

static struct node *find(const char *path) {
    for (size_t i = 0; i < count; i++)
        if (strcmp(nodes[i]->path, path) == 0) return nodes[i];
    return NULL;
}

static int is_control(const char *path) { return path != NULL && strcmp(path, CONTROL) == 0; }

/* The path of the directory `path` lies in, in `out`; "" for the root. */
static void parent_path(const char *path, char out[PATH_MAX]) {
    const char *slash = strrchr(path, '/');
    size_t n = slash == NULL || strcmp(path, "/") == 0 ? 0 : slash == path ? 1 : (size_t)(slash - path);
    if (n >= PATH_MAX) n = 0;
    memcpy(out, path, n);
    out[n] = '\0';
}

/* The directory `path` lies in; NULL for the root or a missing parent. */
static struct node *parent_of(const char *path) {
    char parent[PATH_MAX];
    parent_path(path, parent);
    return parent[0] ? find(parent) : NULL;
}

/* Whether `path` lies directly in the directory `dir`. */
static int is_child(const char *path, const char *dir) {
    char parent[PATH_MAX];
    parent_path(path, parent);
    return strcmp(parent, dir) == 0;
}

static void now(struct timespec *t) { clock_gettime(CLOCK_REALTIME, t); }

/* A new node owned by `uid` and `gid`. */
static struct node *add(const char *path, mode_t mode, uid_t uid, gid_t gid) {
    struct node *n = calloc(1, sizeof *n);
    n->path = strdup(path);
    n->mode = mode;
    n->uid = uid;
    n->gid = gid;
    now(&n->atime);
    n->mtime = n->ctime = n->atime;
    nodes = realloc(nodes, (count + 1) * sizeof *nodes);
    nodes[count++] = n;
    return n;
}

static void drop(struct node *n) {
    for (size_t i = 0; i < count; i++) {
        if (nodes[i] != n) continue;
        nodes[i] = nodes[--count];
        break;
    }
    free(n->current.bytes);
    free(n->durable.bytes);
    free(n->path);
    free(n);
}

/* Sets `to` to a copy of `from`. */
static void copy_blob(struct blob *to, const struct blob *from) {
    free(to->bytes);
    to->bytes = malloc(from->length ? from->length : 1);
    memcpy(to->bytes, from->bytes, from->length);
    to->length = from->length;
}

/* Resizes `b`, zero-filling what it gains. */
static void resize(struct blob *b, size_t length) {
    if (length > b->length) {
        b->bytes = realloc(b->bytes, length);
        memset(b->bytes + b->length, 0, length - b->length);
    }
    b->length = length;
}

/* Bytes that differ between two contents, counting a length difference as differing bytes. */
static long long difference(const struct blob *a, const struct blob *b) {
    size_t common = a->length < b->length ? a->length : b->length;
    long long n = (long long)(a->length > b->length ? a->length - b->length : b->length - a->length);
    for (size_t i = 0; i < common; i++) n += a->bytes[i] != b->bytes[i];
    return n;
}

/* The power cut: every file loses what it was never synced. */
static void cut(void) {
    last_dropped = last_files = 0;
    for (size_t i = 0; i < count; i++) {
        struct node *n = nodes[i];
        if (!S_ISREG(n->mode)) continue;
        long long lost = difference(&n->current, &n->durable);
        if (lost == 0) continue;
        last_dropped += lost;
        last_files++;
        printf("powercut: cut %d dropped %lld bytes of %s\n", cuts + 1, lost, n->path);
        copy_blob(&n->current, &n->durable);
    }
    dead = 1;
    armed = 0;
    cuts++;
    printf("powercut: cut %d dropped %lld bytes in %lld files\n", cuts, last_dropped, last_files);
    fflush(stdout);
}

static int report(char *out, size_t size) {
    return snprintf(out, size, "cuts=%d dropped=%lld files=%lld open=%d dead=%d armed=%d\n", cuts, last_dropped,
                    last_files, open_handles, dead, armed);
}

/* Every operation outside the control file starts with this: a dead disk answers nothing. */
#define ALIVE(path)                                  \
    do {                                             \
        if (dead && !is_control(path)) return -EIO;  \
    } while (0)

static void *pc_init(struct fuse_conn_info *conn, struct fuse_config *cfg) {
    (void)conn;
    /* After a cut, sizes and contents change under the kernel: cache no attributes or names, and
     * let every open drop the file's cached pages (kernel_cache stays off). */
    cfg->attr_timeout = 0;
    cfg->entry_timeout = 0;
    cfg->negative_timeout = 0;
    return NULL;
}

static int pc_getattr(const char *path, struct stat *st, struct fuse_file_info *fi) {
    (void)fi;
    memset(st, 0, sizeof *st);
    if (is_control(path)) {
        st->st_mode = S_IFREG | 0666;
        st->st_nlink = 1;
        return 0;
    }
    struct node *n = find(path);
    if (n == NULL) return -ENOENT;
    st->st_mode = n->mode;
    st->st_nlink = S_ISDIR(n->mode) ? 2 : 1;
    st->st_uid = n->uid;
    st->st_gid = n->gid;
    st->st_size = (off_t)n->current.length;
    st->st_blksize = 4096;
    st->st_blocks = (blkcnt_t)((n->current.length + 511) / 512);
    st->st_atim = n->atime;
    st->st_mtim = n->mtime;
    st->st_ctim = n->ctime;
    return 0;
}

static int pc_access(const char *path, int mask) {
    (void)mask;
    ALIVE(path);
    return is_control(path) || find(path) ? 0 : -ENOENT;
}

static int pc_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t offset, struct fuse_file_info *fi,
                      enum fuse_readdir_flags flags) {
    (void)offset, (void)fi, (void)flags;
    ALIVE(path);
    struct node *dir = find(path);
    if (dir == NULL) return -ENOENT;
    if (!S_ISDIR(dir->mode)) return -ENOTDIR;
    fill(buf, ".", NULL, 0, 0);
    fill(buf, "..", NULL, 0, 0);
    for (size_t i = 0; i < count; i++)
        if (is_child(nodes[i]->path, path)) fill(buf, strrchr(nodes[i]->path, '/') + 1, NULL, 0, 0);
    return 0;
}

/* Checks that `path` can be created: its parent is a directory and the name is free. */
static int creatable(const char *path) {
    if (is_control(path) || find(path)) return -EEXIST;
    struct node *parent = parent_of(path);
    if (parent == NULL) return -ENOENT;
    return S_ISDIR(parent->mode) ? 0 : -ENOTDIR;
}

static int pc_mkdir(const char *path, mode_t mode) {
    ALIVE(path);
    int rc = creatable(path);
    if (rc == 0) add(path, S_IFDIR | (mode & 07777), fuse_get_context()->uid, fuse_get_context()->gid);
    return rc;
}

static int pc_rmdir(const char *path) {
    ALIVE(path);
    struct node *n = find(path);
    if (n == NULL) return -ENOENT;
    if (!S_ISDIR(n->mode)) return -ENOTDIR;
    for (size_t i = 0; i < count; i++)
        if (is_child(nodes[i]->path, path)) return -ENOTEMPTY;
    drop(n);
    return 0;
}

static int pc_unlink(const char *path) {
    ALIVE(path);
    struct node *n = find(path);
    if (n == NULL) return -ENOENT;
    if (S_ISDIR(n->mode)) return -EISDIR;
    drop(n);
    return 0;
}

static int pc_rename(const char *from, const char *to, unsigned int flags) {
    ALIVE(from);
    if (is_control(from) || is_control(to)) return -EPERM;
    if (flags & RENAME_EXCHANGE) return -EINVAL;
    struct node *n = find(from);
    if (n == NULL) return -ENOENT;
    struct node *parent = parent_of(to);
    if (parent == NULL) return -ENOENT;
    size_t from_length = strlen(from);
    if (strncmp(to, from, from_length) == 0 && to[from_length] == '/') return -EINVAL; /* into itself */
    struct node *target = find(to);
    if (target != NULL && target != n) {
        if (flags & RENAME_NOREPLACE) return -EEXIST;
        if (S_ISDIR(target->mode) != S_ISDIR(n->mode)) return S_ISDIR(target->mode) ? -EISDIR : -ENOTDIR;
        for (size_t i = 0; i < count; i++)
            if (is_child(nodes[i]->path, to)) return -ENOTEMPTY;
        drop(target);
    }
    /* The node and, for a directory, everything below it move. */
    for (size_t i = 0; i < count; i++) {
        char *p = nodes[i]->path;
        if (strncmp(p, from, from_length) != 0 || (p[from_length] != '\0' && p[from_length] != '/')) continue;
        char *moved;
        if (asprintf(&moved, "%s%s", to, p + from_length) < 0) return -ENOMEM;
        free(p);
        nodes[i]->path = moved;
    }
    now(&n->ctime);
    return 0;
}

static int pc_chmod(const char *path, mode_t mode, struct fuse_file_info *fi) {
    (void)fi;
    ALIVE(path);
    struct node *n = find(path);
    if (n == NULL) return is_control(path) ? -EPERM : -ENOENT;
    n->mode = (n->mode & S_IFMT) | (mode & 07777);
    now(&n->ctime);
    return 0;
}

static int pc_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi) {
    (void)fi;
    ALIVE(path);
    struct node *n = find(path);
    if (n == NULL) return is_control(path) ? -EPERM : -ENOENT;
    if (uid != (uid_t)-1) n->uid = uid;
    if (gid != (gid_t)-1) n->gid = gid;
    now(&n->ctime);
    return 0;
}

static int pc_truncate(const char *path, off_t size, struct fuse_file_info *fi) {
    (void)fi;
    if (is_control(path)) return 0; /* `echo cut > /.powercut` truncates first */
    ALIVE(path);
    struct node *n = find(path);
    if (n == NULL) return -ENOENT;
    if (S_ISDIR(n->mode)) return -EISDIR;
    resize(&n->current, (size_t)size);
    now(&n->mtime);
    n->ctime = n->mtime;
    return 0;
}

static int pc_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi) {
    (void)fi;
    ALIVE(path);
    struct node *n = find(path);
    if (n == NULL) return is_control(path) ? 0 : -ENOENT;
    struct timespec t;
    now(&t);
    struct timespec *fields[2] = {&n->atime, &n->mtime};
    for (int i = 0; i < 2; i++) {
        if (tv == NULL || tv[i].tv_nsec == UTIME_NOW) *fields[i] = t;
        else if (tv[i].tv_nsec != UTIME_OMIT) *fields[i] = tv[i];
    }
    n->ctime = t;
    return 0;
}

static int pc_open(const char *path, struct fuse_file_info *fi) {
    if (is_control(path)) {
        fi->direct_io = 1; /* its size stays 0; reads and writes must reach us all the same */
        return 0;
    }
    ALIVE(path);
    struct node *n = find(path);
    if (n == NULL) return -ENOENT;
    if (S_ISDIR(n->mode)) return -EISDIR;
    open_handles++;
    return 0;
}

static int pc_create(const char *path, mode_t mode, struct fuse_file_info *fi) {
    (void)fi;
    ALIVE(path);
    int rc = creatable(path);
    if (rc != 0) return rc;
    add(path, S_IFREG | (mode & 07777), fuse_get_context()->uid, fuse_get_context()->gid);
    open_handles++;
    return 0;
}

static int pc_release(const char *path, struct fuse_file_info *fi) {
    (void)fi;
    if (!is_control(path)) open_handles--;
    return 0;
}

static int pc_flush(const char *path, struct fuse_file_info *fi) {
    (void)path, (void)fi;
    return 0;
}

static int pc_read(const char *path, char *buf, size_t size, off_t offset, struct fuse_file_info *fi) {
    (void)fi;
    char text[256];
    struct blob control = {text, 0};
    const struct blob *b = &control;
    if (is_control(path)) {
        control.length = (size_t)report(text, sizeof text);
    } else {
        ALIVE(path);
        struct node *n = find(path);
        if (n == NULL) return -ENOENT;
        b = &n->current;
    }
    if ((size_t)offset >= b->length) return 0;
    if (size > b->length - (size_t)offset) size = b->length - (size_t)offset;
    memcpy(buf, b->bytes + offset, size);
    return (int)size;
}

static int pc_write(const char *path, const char *buf, size_t size, off_t offset, struct fuse_file_info *fi) {
    (void)fi;
    if (is_control(path)) {
        if (size >= 3 && strncmp(buf, "cut", 3) == 0) cut();
        else if (size >= 3 && strncmp(buf, "arm", 3) == 0) armed = 1;
        else if (size >= 2 && strncmp(buf, "on", 2) == 0) dead = 0;
        else return -EINVAL;
        return (int)size;
    }
    ALIVE(path);
    struct node *n = find(path);
    if (n == NULL) return -ENOENT;
    if ((size_t)offset + size > n->current.length) resize(&n->current, (size_t)offset + size);
    memcpy(n->current.bytes + offset, buf, size);
    now(&n->mtime);
    n->ctime = n->mtime;
    return (int)size;
}

/* fsync and fdatasync alike (datasync 1 or 0): the file's data reaches the platters, unless the
 * power was set to go at this very moment. */
static int pc_fsync(const char *path, int datasync, struct fuse_file_info *fi) {
    (void)datasync, (void)fi;
    if (is_control(path)) return 0;
    ALIVE(path);
    struct node *n = find(path);
    if (n == NULL) return -ENOENT;
    if (armed) {
        cut();
        return -EIO;
    }
    if (S_ISREG(n->mode)) copy_blob(&n->durable, &n->current);
    return 0;
}

static int pc_statfs(const char *path, struct statvfs *st) {
    (void)path;
    memset(st, 0, sizeof *st);
    st->f_bsize = st->f_frsize = 4096;
    st->f_blocks = st->f_bfree = st->f_bavail = 1 << 20; /* 4 GiB, whatever is in memory */
    st->f_files = st->f_ffree = 1 << 20;
    st->f_namemax = 255;
    return 0;
}

static const struct fuse_operations operations = {
    .init = pc_init,
    .getattr = pc_getattr,
    .access = pc_access,
    .readdir = pc_readdir,
    .mkdir = pc_mkdir,
    .rmdir = pc_rmdir,
    .unlink = pc_unlink,
    .rename = pc_rename,
    .chmod = pc_chmod,
    .chown = pc_chown,
    .truncate = pc_truncate,
    .utimens = pc_utimens,
    .open = pc_open,
    .create = pc_create,
    .release = pc_release,
    .flush = pc_flush,
    .read = pc_read,
    .write = pc_write,
    .fsync = pc_fsync,
    .statfs = pc_statfs,
};

int main(int argc, char *argv[]) {
    add("/", S_IFDIR | 0755, getuid(), getgid());
    return fuse_main(argc, argv, &operations, NULL);
}
