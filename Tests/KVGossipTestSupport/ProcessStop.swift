import Foundation

extension Process {
    /// Stops the process by its PID: `signal` first, then SIGKILL if it is still running after
    /// `grace` seconds; returns once it has exited, with its termination status.
    @discardableResult
    public func stop(signal: Int32, grace: TimeInterval) -> Int32 {
        guard isRunning else { return terminationStatus }
        kill(processIdentifier, signal)
        let deadline = Date().addingTimeInterval(grace)
        while isRunning && Date() < deadline { usleep(20_000) }
        if isRunning { kill(processIdentifier, SIGKILL) }
        waitUntilExit()
        return terminationStatus
    }
}
