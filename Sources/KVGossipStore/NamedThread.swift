import Foundation

/// Starts a thread under a name the kernel shows (`top -H`, `ps -L`, `/proc/PID/task/*/comm`,
/// perf), so an operator can tell the agent's threads apart. Foundation's `Thread.name` does not
/// reach the kernel on Linux, and Swift's Glibc module leaves `pthread_setname_np` out: without
/// this every thread the agent starts, and every libfuse worker they start in turn, showed the
/// name of the dispatch thread that created it. The kernel keeps 15 bytes of a name; longer ones
/// are cut.
public func startNamedThread(_ name: String, _ body: @escaping @Sendable () -> Void) {
    let thread = Thread {
        nameThisThread(name)
        body()
    }
    thread.name = name
    thread.start()
}

/// Writes the calling thread's name where the kernel keeps it (what `pthread_setname_np` does on
/// Linux). Failing is harmless: the thread keeps the name it inherited.
private func nameThisThread(_ name: String) {
    let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return }
    defer { close(fd) }
    let bytes = Array(name.utf8.prefix(15))
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
}
