import Dispatch
import Foundation
import Synchronization

/// What a finished command left behind.
struct ShellResult: CustomStringConvertible {
    var status: Int32
    var stdout: String
    var stderr: String
    var timedOut: Bool

    var ok: Bool { status == 0 && !timedOut }
    var description: String { "status=\(status)\(timedOut ? " TIMED OUT" : "") stdout=\(stdout.debugDescription) stderr=\(stderr.debugDescription)" }
}

/// Runs real programs the way a user would: `/bin/sh -c` in a directory, every wait bounded.
enum Shell {
    static func run(_ script: String, in directory: String? = nil, timeout: Double = 20) -> ShellResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script]
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        var environment = ProcessInfo.processInfo.environment
        environment["LC_ALL"] = "C"
        process.environment = environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        let outText = Collector(out.fileHandleForReading)
        let errText = Collector(err.fileHandleForReading)
        do { try process.run() } catch {
            return ShellResult(status: -1, stdout: "", stderr: "\(error)", timedOut: false)
        }
        var timedOut = false
        if exited.wait(timeout: .now() + timeout) == .timedOut {
            timedOut = true
            kill(process.processIdentifier, SIGKILL)
            _ = exited.wait(timeout: .now() + 5)
        }
        return ShellResult(status: process.terminationStatus, stdout: outText.finish(), stderr: errText.finish(), timedOut: timedOut)
    }
}

/// Drains a pipe on its own thread so a chatty command never blocks on a full pipe.
final class Collector: Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let text = Mutex("")

    init(_ handle: FileHandle) {
        let thread = Thread { [self] in
            let data = handle.readDataToEndOfFile()
            text.withLock { $0 = String(decoding: data, as: UTF8.self) }
            done.signal()
        }
        thread.start()
    }

    func finish() -> String {
        _ = done.wait(timeout: .now() + 5)
        return text.withLock { $0 }
    }
}
