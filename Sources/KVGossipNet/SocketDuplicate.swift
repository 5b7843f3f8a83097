import Glibc
import NIOCore

/// A descriptor of our own for a connected channel's socket, so that a thread other than the
/// channel's event loop can write to it without handing the bytes to the loop and waking it.
///
/// NIO does not give out a channel's descriptor, so it is found by its two endpoints among the
/// process's descriptors (`/proc/self/fd`) and duplicated; the duplicate is checked again, since
/// the descriptor found could have been closed and its number reused in between. A TCP socket's
/// pair of endpoints names one connection on a host, and NIO caches the channel's from the same
/// system calls, so the bytes compare exactly. Where `/proc` is missing, or the channel is already
/// closed, there is no duplicate and the caller writes through NIO.
///
/// The duplicate keeps the connection open after NIO closes its own descriptor: its owner must
/// `close` it when the connection ends, and must not write after that (the number may be reused).
public struct SocketDuplicate: Sendable {
    public let descriptor: Int32

    /// What one `send` did.
    public enum Sent: Equatable, Sendable {
        /// Every byte is in the socket's buffer.
        case all
        /// The first `count` bytes are (possibly none): the buffer is full.
        case part(Int)
        /// The connection is broken (`errno`); nothing more can be written to it.
        case failed(Int32)
    }

    /// Duplicates `channel`'s socket; nil when it cannot be found. The scan runs from the highest
    /// descriptor down, where a connection just made usually is, and asks a descriptor for its peer
    /// only once its own end and its type match.
    public static func of(_ channel: any Channel) -> SocketDuplicate? {
        guard let local = channel.localAddress.map(bytes), let remote = channel.remoteAddress.map(bytes),
              let dir = opendir("/proc/self/fd")
        else { return nil }
        var descriptors: [Int32] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if let fd = Int32(name) { descriptors.append(fd) }
        }
        closedir(dir)
        func connects(_ fd: Int32) -> Bool {
            endpoint(of: fd, getsockname) == local && isStream(fd) && endpoint(of: fd, getpeername) == remote
        }
        guard let fd = descriptors.sorted(by: >).first(where: connects) else { return nil }
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else { return nil }
        // The number found may have been closed and given to another socket since.
        guard connects(copy) else {
            Glibc.close(copy)
            return nil
        }
        return SocketDuplicate(descriptor: copy)
    }

    /// Writes as much of `bytes`' readable bytes as the socket takes now, without waiting and
    /// without SIGPIPE.
    public func send(_ bytes: ByteBuffer) -> Sent {
        bytes.withUnsafeReadableBytes { buffer in
            var done = 0
            while done < buffer.count {
                let n = Glibc.send(descriptor, buffer.baseAddress! + done, buffer.count - done, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
                if n > 0 {
                    done += n
                    continue
                }
                let error = n < 0 ? errno : EPIPE
                if error == EINTR { continue }
                if error == EAGAIN || error == EWOULDBLOCK { return .part(done) }
                return .failed(error)
            }
            return .all
        }
    }

    public func close() { Glibc.close(descriptor) }

    private static func bytes(_ address: SocketAddress) -> [UInt8] {
        address.withSockAddr { pointer, length in Array(UnsafeRawBufferPointer(start: pointer, count: length)) }
    }

    /// One end of the socket `fd` as `getsockname` or `getpeername` writes it; nil for anything
    /// that is not a socket, or has no such end.
    private static func endpoint(
        of fd: Int32, _ call: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32
    ) -> [UInt8]? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let status = withUnsafeMutablePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, &length) }
        }
        guard status == 0 else { return nil }
        return withUnsafeBytes(of: &storage) { Array($0.prefix(Int(length))) }
    }

    private static func isStream(_ fd: Int32) -> Bool {
        var type: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) == 0 && type == Int32(SOCK_STREAM.rawValue)
    }
}
