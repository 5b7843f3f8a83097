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

#endif
