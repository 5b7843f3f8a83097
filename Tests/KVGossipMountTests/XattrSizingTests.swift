import Foundation
import Glibc
import KVGossipCore
import Testing
import KVGossipMount

/// getxattr(2) and listxattr(2) called directly, with the buffer sizes programs use
/// (Docs/filesystem.md §Extended attributes, Docs/filesystem.md §Xattr conventions): `listxattr` lists
/// exactly the names present, a size-0 query returns the length, a short buffer gets ERANGE, any
/// other name ENODATA.
extension MountTests {
    @Suite struct XattrSizingTests {
        /// What one call returned: the count (or -1), errno when it failed, and the bytes.
        struct Answer: Equatable {
            var count: Int
            var error: Int32 = 0
            var bytes: [UInt8] = []
        }

        static func call(size: Int, _ body: (UnsafeMutableRawPointer?, Int) -> Int) -> Answer {
            var buffer = [UInt8](repeating: 0, count: max(size, 1))
            let n = buffer.withUnsafeMutableBytes { body(size == 0 ? nil : $0.baseAddress, size) }
            guard n >= 0 else { return Answer(count: n, error: errno) }
            return Answer(count: n, bytes: size == 0 ? [] : Array(buffer[..<n]))
        }

        // glibc's getxattr(2) and listxattr(2): <sys/xattr.h> is not part of Swift's Glibc module.
        typealias GetXattr = @convention(c) (UnsafePointer<CChar>, UnsafePointer<CChar>, UnsafeMutableRawPointer?, Int) -> Int
        typealias ListXattr = @convention(c) (UnsafePointer<CChar>, UnsafeMutableRawPointer?, Int) -> Int

        static func libc<F>(_ name: String, as type: F.Type) -> F {
            unsafeBitCast(dlsym(UnsafeMutableRawPointer(bitPattern: 0), name)!, to: type)
        }

        static func get(_ path: String, _ name: String, size: Int) -> Answer {
            let getxattr = libc("getxattr", as: GetXattr.self)
            return call(size: size) { getxattr(path, name, $0, $1) }
        }

        static func list(_ path: String, size: Int) -> Answer {
            let listxattr = libc("listxattr", as: ListXattr.self)
            return call(size: size) { listxattr(path, $0, $1) }
        }

        /// The names of the table in the Docs section.
        static let onKeys = ["signer", "chain", "timestamp", "digest", "dirty", "state", "writable", "history"]
        static let onRoot = ["treehash", "peers"]
        static let onUncommittedKeys = ["dirty", "state", "writable"]
        static func ours(_ names: [String]) -> Set<String> { Set(names.map { "user.kvgossip." + $0 }) }

        /// Checks every sizing rule on `path`, whose attributes must be exactly `names`; returns
        /// each value as the mount gave it.
        @discardableResult
        static func checkSizing(_ path: String, names: Set<String>) -> [String: String] {
            let length = list(path, size: 0)
            #expect(length.count == names.reduce(0) { $0 + $1.utf8.count + 1 }, "\(path): \(length)")
            let listed = list(path, size: length.count + 10)
            let parts = listed.bytes.split(separator: 0, omittingEmptySubsequences: false).dropLast()
            #expect(listed.count == length.count && (listed.bytes.isEmpty || listed.bytes.last == 0), "\(path): \(listed)")
            #expect(parts.count == names.count && Set(parts.map { String(decoding: $0, as: UTF8.self) }) == names, "\(path): \(parts)")
            if length.count > 0 {
                #expect(list(path, size: length.count - 1) == Answer(count: -1, error: ERANGE), "\(path)")
            }

            var values: [String: String] = [:]
            for name in names {
                let size = get(path, name, size: 0)
                let value = get(path, name, size: max(size.count, 1))
                #expect(size.count >= 0 && value.count == size.count, "\(path) \(name): \(size) then \(value)")
                values[name] = String(decoding: value.bytes, as: UTF8.self)
                // (A one-byte value has no short buffer: size 0 is the length query.)
                if size.count > 1 {
                    #expect(get(path, name, size: size.count - 1) == Answer(count: -1, error: ERANGE), "\(path) \(name)")
                }
            }
            // Ours that this entry lacks, unknown ones in our namespace, and what `ls` probes.
            let absent = Self.ours(Self.onKeys + Self.onRoot).subtracting(names).sorted()
                + ["user.kvgossip.nonesuch", "user.other", "security.selinux"]
            for name in absent {
                #expect(get(path, name, size: 0) == Answer(count: -1, error: ENODATA), "\(path) \(name)")
                #expect(get(path, name, size: 256) == Answer(count: -1, error: ENODATA), "\(path) \(name)")
            }
            return values
        }

        @Test func sizesAndNamesFollowPOSIXOnFilesAndDirectories() throws {
            var options = MountOptions()
            options.peers = { ["10.0.0.2:7946", "10.0.0.3:7946"] }
            try withMount(seed: ["/app/k": "v"], options: options) { fx throws in
                let record = try #require(try fx.store.record(Key("/app/k")))
                let file = Self.checkSizing(fx.path("/app/k"), names: Self.ours(Self.onKeys))
                #expect(file["user.kvgossip.digest"] == record.digest.hex)
                #expect(file["user.kvgossip.state"] == "synced")

                let root = Self.checkSizing(fx.mountpoint, names: Self.ours(Self.onRoot))
                #expect(root["user.kvgossip.treehash"] == fx.store.treeHash.hex)
                #expect(root["user.kvgossip.peers"] == "10.0.0.2:7946\n10.0.0.3:7946")
                // Any other directory has none.
                Self.checkSizing(fx.path("/app"), names: [])

                // A file created here and not committed yet: only dirty, state and writable.
                let fd = open(fx.path("/app/new"), O_CREAT | O_WRONLY, 0o644)
                try #require(fd >= 0)
                defer { close(fd) }
                let fresh = Self.checkSizing(fx.path("/app/new"), names: Self.ours(Self.onUncommittedKeys))
                #expect(fresh["user.kvgossip.writable"] == "1")
            }
        }
    }
}
