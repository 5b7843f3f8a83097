import Foundation

/// Blocking calls (a raw socket's connect, read or write) made from an async test. On Swift's
/// cooperative threads they would hold up the tasks of the code under test (two threads on a
/// two-core machine): one such test left a connection unaccepted and its server trapped in NIO
/// when it was stopped.
public enum OwnThread {
    /// Runs `body` on a thread of its own and waits for it without holding a cooperative thread.
    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }
}
