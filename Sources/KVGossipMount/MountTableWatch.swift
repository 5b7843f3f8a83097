import Foundation
import Glibc
import Synchronization

/// Notices when a mount disappears from the mount table while its session still runs. A lazy
/// unmount (`umount -l`, `fusermount3 -uz`) detaches the tree from its path but ends nothing: the
/// kernel keeps the filesystem alive while anyone holds a descriptor into it (the replay helper
/// does), so the request loop goes on serving a tree nobody can reach. The kernel flags
/// /proc/self/mountinfo (POLLPRI) at every change of the mount table; at each one this checks that
/// the mount is still listed at its path.
final class MountTableWatch: Sendable {
    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)

    /// Starts watching for the mount with connection `minor` at `mountpoint`; calls `gone` once,
    /// on the watch's thread, when it is no longer listed there.
    init(mountpoint: String, minor: UInt32, gone: @escaping @Sendable () -> Void) {
        let thread = Thread { [self] in
            defer { finished.signal() }
            let fd = Glibc.open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return }
            defer { close(fd) }
            var buffer = [UInt8](repeating: 0, count: 4096)
            while !stopping.load(ordering: .relaxed) {
                // Reading to the end re-arms the notification.
                _ = lseek(fd, 0, SEEK_SET)
                while buffer.withUnsafeMutableBytes({ read(fd, $0.baseAddress, $0.count) }) > 0 {}
                if !StaleMount.entries(at: mountpoint).contains(where: { $0.minor == minor }) {
                    if !stopping.load(ordering: .relaxed) { gone() }
                    return
                }
                var pfd = pollfd(fd: fd, events: Int16(POLLPRI), revents: 0)
                // A timeout bounds how long stop() waits for this thread.
                _ = poll(&pfd, 1, 200)
            }
        }
        thread.name = "kvgossip-mounttable"
        thread.start()
    }

    /// Stops watching; returns once the thread has ended.
    func stop() {
        stopping.store(true, ordering: .relaxed)
        finished.wait()
    }
}
