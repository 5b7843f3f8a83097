#ifndef KVGOSSIP_FILE_IDENTITY_H
#define KVGOSSIP_FILE_IDENTITY_H

#include <stdint.h>

/// The device and inode of the file at `path`, asked of statx(2) for the inode number alone, so
/// that the file's timestamps are not marked as seen (why: Sources/KVGossipStore/WALFile.swift).
/// 0, or -1 with errno set.
int kvg_path_identity(const char *path, uint64_t *device, uint64_t *inode);

/// The same for the file an open descriptor refers to.
int kvg_descriptor_identity(int fd, uint64_t *device, uint64_t *inode);

#endif
