import Foundation
import Glibc
import KVGossipStore
import Synchronization

/// SIGTERM and SIGINT as an awaitable event: the handlers replace the default ones so the agent can
/// unmount and close the store before it exits.
///
/// The handler is installed with sigaction(2) before `init` returns, and records each signal by
/// writing its number to a pipe, which a thread of its own turns into events. A Dispatch signal
/// source did this before, and lost signals: the source had the signal ignored (SIG_IGN) at once
/// but caught it only once the Dispatch manager thread had registered it, later and on another
/// thread, and the agent created it only after the mount was up: a SIGTERM before then killed the
/// agent outright, and one in the gap was thrown away (the likeliest cause of an agent seen running
/// on, all its threads idle, after one of 22 stops sent just as a million-key mount appeared; a
/// unit would hang in stop until systemd's SIGKILL). Create one per process, as the first step of
/// a command.
final class ShutdownSignal: Sendable {
    private let stream: AsyncStream<Int32>
    private let seen = Atomic<Bool>(false)

    init() {
        let (stream, continuation) = AsyncStream.makeStream(of: Int32.self)
        self.stream = stream
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { fatalError("pipe for the signal handler: errno \(errno)") }
        _ = fcntl(ends[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(ends[1], F_SETFD, FD_CLOEXEC)
        // Set before the handler exists: the handler only reads it.
        signalPipeWrite = ends[1]
        let readEnd = ends[0]
        startNamedThread("kvg-signals") {
            var byte: UInt8 = 0
            while true {
                let n = read(readEnd, &byte, 1)
                if n == 1 { continuation.yield(Int32(byte)) } else if n < 0, errno == EINTR { continue } else { return }
            }
        }
        for sig in [SIGTERM, SIGINT] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = recordSignal
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(sig, &action, nil)
        }
    }

    var received: Bool { seen.load(ordering: .relaxed) }

    func wait() async -> Int32 {
        for await sig in stream {
            seen.store(true, ordering: .relaxed)
            return sig
        }
        return 0
    }
}

/// Where the handler writes the number of each signal it catches.
nonisolated(unsafe) private var signalPipeWrite: Int32 = -1

/// The signal handler: one write(2), which is safe in a handler, with errno kept for the code it
/// interrupted. A full pipe (65,536 signals unread) drops the signal: one is enough to stop.
private func recordSignal(_ sig: Int32) {
    let saved = errno
    var byte = UInt8(truncatingIfNeeded: sig)
    _ = write(signalPipeWrite, &byte, 1)
    errno = saved
}
