import Dispatch
import Foundation
import KVGossipTestSupport
import Synchronization

/// `inotifywait -m` on some paths, collecting `path|EVENTS|name` lines.
final class InotifyWatch: Sendable {
    struct Event: CustomStringConvertible {
        let watched: String
        let events: [String]
        let name: String
        var description: String { "\(watched)|\(events.joined(separator: ","))|\(name)" }
    }

    private let process: Process
    private let lines = Locked<[String]>([])
    private let partial = Locked("")
    private let ready = DispatchSemaphore(value: 0)

    init(_ paths: [String], events: String = "modify,close_write,create,delete,moved_to") throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/inotifywait")
        process.arguments = ["-m", "-e", events, "--format", "%w|%e|%f"] + paths
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let readySignal = ready
        let errBuffer = Locked("")
        err.fileHandleForReading.readabilityHandler = { handle in
            let text = String(decoding: handle.availableData, as: UTF8.self)
            let all = errBuffer.withLock { $0 += text; return $0 }
            if all.contains("Watches established") { readySignal.signal() }
        }
        out.fileHandleForReading.readabilityHandler = { [lines, partial] handle in
            let data = handle.availableData
            guard !data.isEmpty else { return }
            let complete: [String] = partial.withLock { rest in
                rest += String(decoding: data, as: UTF8.self)
                var parts = rest.components(separatedBy: "\n")
                rest = parts.removeLast()
                return parts
            }
            lines.withLock { $0.append(contentsOf: complete) }
        }
        try process.run()
        guard ready.wait(timeout: .now() + 30) == .success else {
            stop()
            throw WatchError.notReady
        }
    }

    enum WatchError: Error { case notReady }

    var events: [Event] {
        lines.value.map { line in
            let parts = line.components(separatedBy: "|")
            return Event(watched: parts[0], events: parts.count > 1 ? parts[1].components(separatedBy: ",") : [], name: parts.count > 2 ? parts[2] : "")
        }
    }

    func clear() {
        lines.withLock { $0 = [] }
    }

    /// Waits (bounded) until the collected events satisfy `condition`.
    @discardableResult
    func wait(timeout: Double = 30, until condition: ([Event]) -> Bool) -> Bool {
        Readiness.wait(timeout: timeout, every: 0.001) { condition(events) }
    }

    /// SIGKILL: children of the test process inherit its blocked SIGTERM.
    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

extension Array where Element == InotifyWatch.Event {
    /// True when some event on `watched` (and entry `name`) carries `event`.
    func has(_ event: String, watched: String, name: String = "") -> Bool {
        contains { $0.watched == watched && $0.name == name && $0.events.contains(event) }
    }
}
