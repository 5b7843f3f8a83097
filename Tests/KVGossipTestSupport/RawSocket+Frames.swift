import Foundation
import Glibc

extension RawSocket {
    /// Sends one frame: the `u32` big-endian length, then `body`.
    @discardableResult
    public func sendFrame(_ body: String) -> Bool {
        let bytes = Array(body.utf8)
        return send(withUnsafeBytes(of: UInt32(bytes.count).bigEndian) { Array($0) } + bytes)
    }

    /// Receives one whole frame's body; nil if the peer closed or the receive timeout passed first.
    public func receiveFrame(maxBytes: Int = 64 << 20) -> [UInt8]? {
        guard let header = receive(exactly: 4) else { return nil }
        let length = header.reduce(0) { $0 << 8 | Int($1) }
        guard length <= maxBytes else { return nil }
        return receive(exactly: length)
    }

    /// Receives exactly `count` bytes; nil if the peer closed or the receive timeout passed first.
    public func receive(exactly count: Int) -> [UInt8]? { Readiness.receive(fd, count) }
}
