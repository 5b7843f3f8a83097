import CFuse3
import Glibc

/// The low-level operation table. Each entry is a capture-free C function that finds its mount
/// through the request's userdata and forwards to `MountCore`. Kept out of `main.swift` by being in a
/// library: closures there are main-actor isolated and trap on FUSE threads
/// (Docs/filesystem.md §Swift and FUSE threads).
enum FuseOps {
    static func table() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.lookup = { req, parent, name in
            MountCore.from(req).lookup(req, parent, String(cString: name!))
        }
        ops.forget = { req, ino, count in
            MountCore.from(req).forget(ino, count)
            fuse_reply_none(req)
        }
        ops.getattr = { req, ino, fi in
            MountCore.from(req).getattr(req, ino, fi?.pointee.fh)
        }
        ops.setattr = { req, ino, attr, toSet, fi in
            MountCore.from(req).setattr(req, ino, attr!.pointee, toSet, fi?.pointee.fh)
        }
        ops.mkdir = { req, parent, name, _ in
            MountCore.from(req).mkdir(req, parent, String(cString: name!))
        }
        ops.unlink = { req, parent, name in
            MountCore.from(req).unlink(req, parent, String(cString: name!))
        }
        ops.rmdir = { req, parent, name in
            MountCore.from(req).rmdir(req, parent, String(cString: name!))
        }
        ops.rename = { req, parent, name, newParent, newName, flags in
            MountCore.from(req).rename(req, parent, String(cString: name!), newParent, String(cString: newName!), flags)
        }
        ops.link = { req, _, _, _ in fuse_reply_err(req, EPERM) }
        ops.symlink = { req, _, _, _ in fuse_reply_err(req, EPERM) }
        ops.mknod = { req, _, _, _, _ in fuse_reply_err(req, EPERM) }
        ops.open = { req, ino, fi in
            MountCore.from(req).open(req, ino, fi)
        }
        ops.create = { req, parent, name, mode, fi in
            MountCore.from(req).create(req, parent, String(cString: name!), mode, fi)
        }
        ops.read = { req, _, size, offset, fi in
            MountCore.from(req).read(req, size, offset, fi!.pointee.fh)
        }
        ops.write = { req, _, buf, size, offset, fi in
            let chunk = [UInt8](UnsafeRawBufferPointer(start: buf, count: size))
            MountCore.from(req).write(req, chunk, offset, fi!.pointee.fh)
        }
        ops.flush = { req, _, fi in
            MountCore.from(req).flush(req, fi!.pointee.fh)
        }
        ops.fsync = { req, _, _, fi in
            MountCore.from(req).fsync(req, fi!.pointee.fh)
        }
        ops.release = { req, _, fi in
            MountCore.from(req).release(req, fi!.pointee.fh)
        }
        ops.opendir = { req, ino, fi in
            MountCore.from(req).opendir(req, ino, fi)
        }
        ops.readdir = { req, _, size, offset, fi in
            MountCore.from(req).readdir(req, size, offset, fi!.pointee.fh)
        }
        ops.releasedir = { req, _, fi in
            MountCore.from(req).releasedir(req, fi!.pointee.fh)
        }
        ops.fsyncdir = { req, _, _, _ in fuse_reply_err(req, 0) }
        ops.statfs = { req, _ in
            MountCore.from(req).statfs(req)
        }
        ops.getxattr = { req, ino, name, size in
            MountCore.from(req).getxattr(req, ino, String(cString: name!), size)
        }
        ops.listxattr = { req, ino, size in
            MountCore.from(req).listxattr(req, ino, size)
        }
        ops.setxattr = { req, _, name, _, _, _ in
            MountCore.from(req).setxattr(req, String(cString: name!))
        }
        ops.removexattr = { req, _, name in
            MountCore.from(req).removexattr(req, String(cString: name!))
        }
        return ops
    }
}
