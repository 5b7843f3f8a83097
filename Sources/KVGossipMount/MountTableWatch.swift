import Foundation
import Glibc
import KVGossipStore
import Synchronization

/// Notices when a mount disappears from the mount table while its session still runs. A lazy
/// unmount (`umount -l`, `fusermount3 -uz`) detaches the tree from its path but ends nothing: the
/// kernel keeps the filesystem alive while anyone holds a descriptor into it (the replay helper
/// does), so the request loop goes on serving a tree nobody can reach. The kernel flags
/// /proc/self/mountinfo (POLLPRI) at every change of the mount table; at each one this checks that
/// the mount is still listed at its path (and every 10 s anyway).
final class MountTableWatch: Sendable {
    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)

    /// Starts watching for the mount with connection `minor` at `mountpoint`; calls `gone` once,
    /// on the watch's thread, when it is no longer listed there.
    init(mountpoint: String, minor: UInt32, gone: @escaping @Sendable () -> Void) {
        startNamedThread("kvg-mounttable") { [self] in
            defer { finished.signal() }
            let fd = Glibc.open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return }
            defer { close(fd) }
            var changed = true
            var quietPolls = 0
            while !stopping.load(ordering: .relaxed) {
                if changed, !StaleMount.entries(at: mountpoint).contains(where: { $0.minor == minor }) {
                    if !stopping.load(ordering: .relaxed) { gone() }
                    return
                }
                // Each change is reported once: the kernel notes, per open file, the last change
                // poll reported. The timeout only bounds how long stop() waits for this thread;
                // reading the table at every timeout, five times a second, cost an agent on a host
                // with many mounts (twenty agents' mounts in the hosts benchmark) more CPU than
                // anything else it did while idle. So the table is read at a reported change, at
                // an error (EINTR), and every 10 s anyway, for a /proc that never reports one.
                var pfd = pollfd(fd: fd, events: Int16(POLLPRI), revents: 0)
                let reported = poll(&pfd, 1, 200) != 0
                quietPolls = reported ? 0 : quietPolls + 1
                changed = reported || quietPolls % 50 == 0
            }
        }
    }

    /// Stops watching; returns once the thread has ended.
    func stop() {
        stopping.store(true, ordering: .relaxed)
        finished.wait()
    }
}
