import Foundation
import Glibc
import KVGossipTestSupport
import Testing
@testable import KVGossipMount

/// A shared writable mapping of a key file writes into the passthrough backing its handle names;
/// those bytes are never committed and serve no reader opened later (Docs/filesystem.md §Known limits).
extension MountTests {
    @Suite struct TaintedBackingTests {
        /// Descriptors and mappings of one test, given back however the test ends (an open
        /// descriptor or mapping would keep the mount busy at unmount).
        final class Held {
            private var fds: Set<Int32> = []
            private var maps: [(UnsafeMutableRawPointer, Int)] = []

            func open(_ path: String, _ flags: Int32) throws -> Int32 {
                let fd = Glibc.open(path, flags)
                try #require(fd >= 0, "open \(path): errno \(errno)")
                fds.insert(fd)
                return fd
            }

            func close(_ fd: Int32) {
                if fds.remove(fd) != nil { _ = Glibc.close(fd) }
            }

            /// `nil` when mmap fails (errno says why).
            func map(_ fd: Int32, _ size: Int, _ protection: Int32) -> UnsafeMutableRawPointer? {
                guard let address = mmap(nil, size, protection, MAP_SHARED, fd, 0), address != MAP_FAILED else { return nil }
                maps.append((address, size))
                return address
            }

            func releaseAll() {
                for (address, size) in maps { munmap(address, size) }
                maps = []
                for fd in fds { _ = Glibc.close(fd) }
                fds = []
            }

            /// What a read(2) of `fd` from offset 0 returns.
            static func read(_ fd: Int32) -> String {
                var buffer = [UInt8](repeating: 0, count: 256)
                let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
                return n < 0 ? "errno \(errno)" : String(decoding: buffer[..<n], as: UTF8.self)
            }
        }

        @Test func bytesWrittenThroughASharedMappingReachNoLaterReader() throws {
            let committed = "the committed value\n", size = committed.utf8.count
            try withMount(seed: ["/m/k": committed]) { fx throws in
                let path = fx.path("/m/k")
                let held = Held()
                defer { held.releaseAll() }
                let mark = fx.recorder.count
                // A reader holds the file (in passthrough, on a backing of its version), then a
                // handle opened for reading and writing beside it maps the file shared and writable.
                let holder = try held.open(path, O_RDONLY)
                let writer = try held.open(path, O_RDWR)
                let mapped = held.map(writer, size, PROT_READ | PROT_WRITE)
                guard fx.mount.debugPassthrough().active else {
                    // Without passthrough, key files use direct I/O and cannot be mapped shared.
                    #expect(mapped == nil && errno == ENODEV)
                    return
                }
                let scribbled = try #require(mapped, "mmap: errno \(errno)")
                _ = "SCRIBBLE".withCString { memcpy(scribbled, $0, 8) }
                #expect(msync(scribbled, size, MS_SYNC) == 0)
                // The bytes did reach the backing: the reader holding it may see them, as on a
                // local disk. Without this, nothing below would be tested.
                try #require(Held.read(holder) == "SCRIBBLE" + committed.dropFirst(8))

                // A reader opened while the tainted backing is still held reads the committed value.
                let beside = try held.open(path, O_RDONLY)
                #expect(Held.read(beside) == committed)

                // Once every handle is released, a new reader gets a backing of its own.
                held.releaseAll()
                #expect(Readiness.wait { fx.mount.debugOpenFileCount() == 0 })
                let later = try held.open(path, O_RDONLY)
                #expect(Held.read(later) == committed)
                let shown = try #require(held.map(later, size, PROT_READ), "mmap: errno \(errno)")
                #expect(String(decoding: UnsafeRawBufferPointer(start: shown, count: size), as: UTF8.self) == committed)
                held.releaseAll()

                // Never committed: no record, and the store and the mount still hold the old value.
                #expect(fx.settle(from: mark, expected: 0).isEmpty)
                #expect(try fx.values() == ["/m/k": committed])
                #expect(fx.sh("cat m/k").stdout == committed)
            }
        }
    }
}
