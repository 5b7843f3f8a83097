#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/stat.h>
#include "file_identity.h"

static int identity(int directory, const char *path, int flags, uint64_t *device, uint64_t *inode) {
    struct statx info;
    if (statx(directory, path, flags, STATX_INO, &info) != 0) return -1;
    *device = ((uint64_t)info.stx_dev_major << 32) | info.stx_dev_minor;
    *inode = info.stx_ino;
    return 0;
}

int kvg_path_identity(const char *path, uint64_t *device, uint64_t *inode) {
    return identity(AT_FDCWD, path, 0, device, inode);
}

int kvg_descriptor_identity(int fd, uint64_t *device, uint64_t *inode) {
    return identity(fd, "", AT_EMPTY_PATH, device, inode);
}
