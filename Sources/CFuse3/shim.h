// libfuse3's low-level API for the KVGossip mount, plus what Swift cannot import from C directly.
#ifndef KVGOSSIP_CFUSE3_SHIM_H
#define KVGOSSIP_CFUSE3_SHIM_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <malloc.h>  // malloc_trim, which the Glibc module leaves out
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <errno.h>
#include <time.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

// glibc defines O_LARGEFILE as 0 on 64-bit, but the kernel still sets its own bit in the open flags
// it sends; masking it out needs the kernel's value.
#define CFUSE_O_LARGEFILE 0100000
// renameat2(2) flags; glibc's <stdio.h> hides them unless _GNU_SOURCE is set before any include.
#define CFUSE_RENAME_NOREPLACE 1
#define CFUSE_RENAME_EXCHANGE 2
#define CFUSE_RENAME_WHITEOUT 4
// statfs(2) f_type of a FUSE mount.
#define CFUSE_SUPER_MAGIC 0x65735546

/// The calling thread's id: what `fuse_req_ctx(req)->pid` reports for requests made by that thread.
static inline pid_t cfuse_gettid(void) { return (pid_t)syscall(SYS_gettid); }

/// The caller's thread id for a request (0 for RELEASE and FORGET, which have no caller).
static inline pid_t cfuse_req_pid(fuse_req_t req) {
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    return ctx ? ctx->pid : 0;
}

/// Asks the kernel to send `sig` to this process when its parent dies (prctl is variadic, which
/// Swift cannot call).
static inline int cfuse_set_parent_death_signal(int sig) { return prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0); }

/// ioctl(2) with a pointer argument (ioctl is variadic, which Swift cannot call).
static inline int cfuse_ioctl_pointer(int fd, unsigned long request, void *arg) { return ioctl(fd, request, arg); }

/// Seals a memfd against every change (F_ADD_SEALS with F_SEAL_SEAL, _SHRINK, _GROW, _WRITE; fcntl
/// is variadic, and glibc names the constants only under _GNU_SOURCE).
static inline int cfuse_seal_memfd(int fd) { return fcntl(fd, 1024 + 9, 0x1 | 0x2 | 0x4 | 0x8); }

/// memfd_create(2) through syscall(2): glibc declares it only under _GNU_SOURCE.
static inline int cfuse_memfd_create(const char *name, unsigned int flags) { return (int)syscall(SYS_memfd_create, name, flags); }

/// One libfuse worker at a time reads the connection (`MountCore.requestReader`,
/// Docs/filesystem.md §One reader at a time). The others wait on `turn` with a futex: a worker asleep
/// in read(2) of /dev/fuse is one the kernel wakes for the next request, while the holder, which
/// polls for a short while after a quick request, takes it without any wake-up.
struct cfuse_reader {
    int holder;             // thread id allowed to read the connection, 0 for none
    unsigned int turn;      // bumped at every hand-off; followers wait on it
    int waiting;            // followers inside the futex wait
    long long spin_ns;      // how long the holder polls before it sleeps in read(2), this time
    long long spin_long_ns; // for a new holder after a slow request
    long long spin_open_ns; // after a reader's OPEN
    long long spin_short_ns;// after any other quick request
};

static inline long long cfuse_monotonic_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/// Waits until the calling thread holds the reader's turn. The wait wakes every 200 ms to honour
/// libfuse's cancellation of idle workers when the session ends (a futex wait is no cancellation
/// point).
static inline void cfuse_reader_acquire(struct cfuse_reader *r, int me) {
    for (;;) {
        int holder = __atomic_load_n(&r->holder, __ATOMIC_ACQUIRE);
        if (holder == me) return;
        unsigned int turn = __atomic_load_n(&r->turn, __ATOMIC_ACQUIRE);
        int free_turn = 0;
        if (holder == 0 && __atomic_compare_exchange_n(&r->holder, &free_turn, me, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return;
        // Sequentially consistent, with the hand-off's store and load: each side must see the
        // other's write, or a hand-off could skip the wake-up this wait needs.
        __atomic_add_fetch(&r->waiting, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&r->holder, __ATOMIC_SEQ_CST) != 0) {
            struct timespec limit = { 0, 200 * 1000 * 1000 };
            syscall(SYS_futex, &r->turn, FUTEX_WAIT_PRIVATE, turn, &limit, NULL, 0);
        }
        __atomic_sub_fetch(&r->waiting, 1, __ATOMIC_ACQ_REL);
        // A holder that is gone (a thread libfuse let exit) must not keep the turn.
        int gone = __atomic_load_n(&r->holder, __ATOMIC_ACQUIRE);
        if (gone != 0 && syscall(SYS_tgkill, getpid(), gone, 0) != 0 && errno == ESRCH
            && __atomic_compare_exchange_n(&r->holder, &gone, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
            __atomic_add_fetch(&r->turn, 1, __ATOMIC_SEQ_CST);
            syscall(SYS_futex, &r->turn, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
        }
        pthread_testcancel();
    }
}

/// Gives the turn up (before a request that may wait: a save, anything under the mutation lock) and
/// wakes one follower to read in its place. Keeps errno.
static inline void cfuse_reader_hand_off(struct cfuse_reader *r) {
    int saved = errno;
    __atomic_store_n(&r->holder, 0, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&r->turn, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&r->waiting, __ATOMIC_SEQ_CST) > 0) syscall(SYS_futex, &r->turn, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    errno = saved;
}

/// A handler that finds it must wait (the mutation lock, a save) gives the turn up if its thread
/// holds it, so the requests behind it are read meanwhile.
static inline void cfuse_reader_yield(struct cfuse_reader *r) {
    if (r && __atomic_load_n(&r->holder, __ATOMIC_SEQ_CST) == cfuse_gettid()) {
        __atomic_store_n(&r->spin_ns, r->spin_long_ns, __ATOMIC_RELAXED);
        cfuse_reader_hand_off(r);
    }
}

/// Sets how long the holder polls before its next read (the other fields are left alone).
static inline void cfuse_reader_set_spin(struct cfuse_reader *r, long long spin_ns) {
    __atomic_store_n(&r->spin_ns, spin_ns, __ATOMIC_RELAXED);
}

/// The holder's read of the next request: polls for up to `spin_ns` (set by the holder after the
/// request before), yielding the CPU to anything else runnable between polls, then reads (sleeping
/// if nothing came).
static inline ssize_t cfuse_reader_read(struct cfuse_reader *r, int fd, void *buffer, size_t length) {
    cfuse_reader_acquire(r, cfuse_gettid());
    long long spin_ns = __atomic_load_n(&r->spin_ns, __ATOMIC_RELAXED);
    if (spin_ns > 0) {
        long long start = cfuse_monotonic_ns();
        struct pollfd ready = { fd, POLLIN, 0 };
        while (poll(&ready, 1, 0) == 0 && cfuse_monotonic_ns() - start < spin_ns) sched_yield();
    }
    return read(fd, buffer, length);
}

#endif
