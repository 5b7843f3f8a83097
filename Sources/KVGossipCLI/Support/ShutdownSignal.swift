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
        precondition(signalPipeWrite == -1, "one ShutdownSignal per process: a second would take the signals from the first")
        // Only the first signal matters; later ones are not kept.
        let (stream, continuation) = AsyncStream.makeStream(of: Int32.self, bufferingPolicy: .bufferingOldest(1))
        self.stream = stream
        // Close-on-exec from the start (children are spawned from other threads), and a handler
        // that never blocks: with the reader stalled, a full buffer drops the signal.
        var ends: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &ends) == 0 else {
            fatalError("no socket pair for the signal handler: \(String(cString: strerror(errno)))")
        }
        _ = fcntl(ends[1], F_SETFL, fcntl(ends[1], F_GETFL) | O_NONBLOCK)
        // Set before the handler exists: the handler only reads it.
        signalPipeWrite = ends[1]
        let readEnd = ends[0]
        startNamedThread("kvg-signals") {
            // Threads started from Swift's pool inherit a mask that blocks every signal; this one
            // takes SIGTERM and SIGINT, so they are caught even if the main thread was started
            // with them blocked.
            var wanted = sigset_t()
            sigemptyset(&wanted)
            sigaddset(&wanted, SIGTERM)
            sigaddset(&wanted, SIGINT)
            pthread_sigmask(SIG_UNBLOCK, &wanted, nil)
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

/// Where the handler writes the number of each signal it catches (-1 until a ShutdownSignal exists).
nonisolated(unsafe) private var signalPipeWrite: Int32 = -1

/// The signal handler: one write(2), which is safe in a handler, with errno kept for the code it
/// interrupted. A full buffer drops the signal (the write end does not block): one is enough.
private func recordSignal(_ sig: Int32) {
    let saved = errno
    var byte = UInt8(truncatingIfNeeded: sig)
    _ = write(signalPipeWrite, &byte, 1)
    errno = saved
}
