/// Runs `operation`, giving up with `timeout` after `limit`. The operation is cancelled when the
/// time runs out, which ends a pending control call (its answer stream stops).
func withDeadline<T: Sendable>(
    _ limit: Duration, timeout: @escaping @Sendable () -> KVClientError, _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: limit)
            throw timeout()
        }
        defer { group.cancelAll() }
        guard let first = try await group.next() else { throw timeout() }
        return first
    }
}
