import Foundation
import Glibc

/// One inotify instance watching one file in each of many mounts: after a write elsewhere, when
/// each mount's file saw IN_CLOSE_WRITE and read back the new value.
final class FileArrivals {
    private let fd: Int32
    private let files: [String]
    /// The watch descriptor of each file → the file's index.
    private var index: [Int32: Int] = [:]
    /// Events after which the file still read an older value.
    private(set) var staleReads = 0

    init(files: [String]) throws {
        self.files = files
        fd = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard fd >= 0 else { throw BenchError("inotify_init1: \(String(cString: strerror(errno)))") }
        for (i, f) in files.enumerated() {
            let wd = inotify_add_watch(fd, f, UInt32(IN_CLOSE_WRITE))
            // `deinit` closes `fd` as the half-made object is released: no close here.
            guard wd >= 0 else {
                throw BenchError("inotify on \(f): \(String(cString: strerror(errno)))")
            }
            index[wd] = i
        }
    }

    deinit { Glibc.close(fd) }

    /// Discards events already queued.
    func drain() {
        var buffer = [UInt8](repeating: 0, count: 8192)
        while buffer.withUnsafeMutableBytes({ read(fd, $0.baseAddress, $0.count) }) > 0 {}
    }

    /// Waits until every file had IN_CLOSE_WRITE and then read `expected`, or until `timeout`
    /// seconds after `start` (uptime ns); returns ms from `start` to each file's arrival (nil: not
    /// in time). An event after which the file reads something else counts as a stale read, and
    /// the wait for that file goes on.
    func wait(for expected: [UInt8], since start: UInt64, timeout: Double) -> [Double?] {
        var arrived: [Double?] = Array(repeating: nil, count: files.count)
        var missing = files.count
        let deadline = start + UInt64(timeout * 1e9)
        var buffer = [UInt8](repeating: 0, count: 8192)
        while missing > 0 {
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < deadline else { break }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, Int32(min(1000, (deadline - now) / 1_000_000 + 1))) == 1 else { continue }
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            var offset = 0
            while n > 0, offset + 16 <= n {
                let wd = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: Int32.self) }
                let mask = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self) }
                let nameLength = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self) }
                offset += 16 + Int(nameLength)
                guard mask & UInt32(IN_CLOSE_WRITE) != 0, let i = index[wd], arrived[i] == nil else { continue }
                if (try? MountBench.readFile(files[i])) == expected {
                    arrived[i] = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
                    missing -= 1
                } else {
                    staleReads += 1
                }
            }
        }
        return arrived
    }
}
