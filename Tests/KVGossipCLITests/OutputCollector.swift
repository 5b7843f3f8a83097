import Foundation
import Synchronization

/// Reads a pipe on a thread of its own, so a test can wait for text with a deadline instead of
/// blocking forever in `availableData` when nothing more comes.
final class OutputCollector: Sendable {
    private let text = Mutex("")
    let pipe = Pipe()

    init() {
        let handle = pipe.fileHandleForReading
        Thread.detachNewThread { [self] in
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { return }
                text.withLock { $0 += String(decoding: chunk, as: UTF8.self) }
            }
        }
    }

    var output: String { text.withLock { $0 } }

    /// Waits until `predicate` holds for everything read so far, or `timeout` passes.
    func wait(timeout: TimeInterval = 5, _ predicate: (String) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if predicate(output) { return true }
            usleep(5_000)
        }
        return predicate(output)
    }
}
