import Foundation
import Glibc
import KVGossipTestSupport

/// Writes to a file in host 1's mount; on hosts 2 and 3 a thread of each host's own waits for
/// IN_CLOSE_WRITE on the file and then reads it.
///
/// One thread per host, as etcd's side has one thread per watch and as watchers on two machines
/// would run: a single thread that waited for both events and then read both files put host 3's
/// read behind host 2's, adding a read's round trips to every write's time.
final class MountWrites {
    let source: String
    private let readers: [ArrivalReader]
    private(set) var staleReads = 0

    init(mounts: [String], key: String) async throws {
        source = mounts[0] + key
        let files = mounts.dropFirst().map { $0 + key }
        try FileManager.default.createDirectory(atPath: (source as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try MountBench.writeFile(source, Array("initial".utf8))
        for f in files {
            let there = try await Readiness.waitAsync(timeout: .seconds(10)) { try MountBench.readFile(f) == Array("initial".utf8) }
            guard there else { throw BenchError("\(f) never showed the first value") }
        }
        readers = try files.map { try ArrivalReader(file: $0) }
    }

    /// ms from opening the file on host 1 until hosts 2 and 3 have each seen IN_CLOSE_WRITE and
    /// read the file.
    func write(_ value: String) throws -> Double {
        let bytes = Array(value.utf8)
        readers.forEach { $0.arm() }
        let start = DispatchTime.now().uptimeNanoseconds
        try MountBench.writeFile(source, bytes)
        let reads = readers.map { $0.result() }
        let end = DispatchTime.now().uptimeNanoseconds
        for read in reads {
            if try read.get() != bytes { staleReads += 1 }
        }
        return Double(end - start) / 1e6
    }

    func close() { readers.forEach { $0.close() } }
}

/// A thread that, each time it is armed, waits for the next IN_CLOSE_WRITE on one file and reads
/// the file.
private final class ArrivalReader: @unchecked Sendable {
    private let file: String
    private let watcher: MountBench.Watcher
    private let armed = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    // Handed between the two threads through the semaphores above.
    private var outcome: Result<[UInt8], any Error> = .success([])
    private var stopping = false

    init(file: String) throws {
        self.file = file
        watcher = try MountBench.Watcher(file)
        Thread.detachNewThread { [self] in
            defer { finished.signal() }
            while true {
                armed.wait()
                if stopping { return }
                outcome = Result {
                    try watcher.waitForCloseWrite()
                    return try MountBench.readFile(file)
                }
                done.signal()
            }
        }
    }

    /// Drops the events already queued and lets the thread wait for the next one.
    func arm() {
        watcher.drain()
        armed.signal()
    }

    /// What the file read after its event (waits for it).
    func result() -> Result<[UInt8], any Error> {
        done.wait()
        return outcome
    }

    func close() {
        stopping = true
        armed.signal()
        finished.wait()
        watcher.close()
    }
}
