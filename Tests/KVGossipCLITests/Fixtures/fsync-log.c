/*
 * fsync-log: an LD_PRELOAD shim that logs every fsync and fdatasync a process makes.
 *
 * For each call it appends one line, "<call> <rc> <path>\n", to the file named by the environment
 * variable KVG_FSYNC_LOG, where <rc> is what the real call returned and <path> is what
 * /proc/self/fd/N links to. FsyncBeforeAcknowledgementTests counts the lines for the store's WAL.
 *
 * Build: cc -shared -fPIC -O1 -o fsync-log.so fsync-log.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef int (*sync_fn)(int);

/* Appends one line with open(O_APPEND) + write + close: each line is one write(2), so lines from
 * several threads never interleave, and it is in the file (visible to the test) when write returns. */
static void note(const char *call, int rc, int fd) {
    const char *log = getenv("KVG_FSYNC_LOG");
    if (log == NULL) return;
    char link[64], target[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    target[n < 0 ? 0 : n] = '\0';
    char line[4200];
    int len = snprintf(line, sizeof line, "%s %d %s\n", call, rc, target);
    if (len > (int)sizeof line - 1) len = sizeof line - 1;
    int out = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (out < 0) return;
    ssize_t ignored = write(out, line, (size_t)len);
    (void)ignored;
    close(out);
}

/* The real call first, then the line. The line is still written before the wrapper returns to its
 * caller (SQLite), so before the commit returns and before any acknowledgement the caller sends: an
 * acknowledgement can never arrive ahead of its line. Writing the line after the call means a line
 * stands for a sync that has completed, with its result; a line written before would also appear
 * for a sync that then failed, or that was still running when the test read the log. */
static int logged(const char *name, int fd) {
    sync_fn real = (sync_fn)dlsym(RTLD_NEXT, name);
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    int rc = real(fd);
    int saved = errno;
    note(name, rc, fd);
    errno = saved;
    return rc;
}

int fsync(int fd) { return logged("fsync", fd); }
int fdatasync(int fd) { return logged("fdatasync", fd); }
