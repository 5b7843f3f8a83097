import Foundation
import Glibc

/// The replay helper's channel: a Unix socket pair between the agent and its helper
/// (`ReplayHelper`). Request: op u8, path length u32, path, data length u32, data. Reply: code i32
/// (0 or errno), device u64. Big-endian.
///
/// The agent's side waits with a deadline (`ReplayHelper.Child`): a helper that stops answering
/// (stopped by a signal, or stuck) must not hold the change follower, and the mount's stop behind
/// it, for ever. The helper's side waits without one: it has nothing to do but serve the agent.
enum Wire {
    static let maxPathBytes = 4096
    static let maxDataBytes = 64 << 20

    static func request(_ operation: ReplayHelper.Operation, path: String, data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [operation.rawValue]
        append(UInt32(path.utf8.count), to: &out)
        out += path.utf8
        append(UInt32(data.count), to: &out)
        return out + data
    }

    static func reply(_ code: Int32, dev: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        append(UInt32(bitPattern: code), to: &out)
        append(UInt32(dev >> 32), to: &out)
        append(UInt32(dev & 0xffff_ffff), to: &out)
        return out
    }

    private static func append(_ value: UInt32, to out: inout [UInt8]) {
        out += [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)]
    }

    /// Writes all of `bytes`, waiting for room until `deadline` (`monotonicMs`; nil: for ever).
    /// False if the other side is gone or the deadline passed first.
    static func send(_ fd: Int32, _ bytes: [UInt8], until deadline: UInt64? = nil) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            if n > 0 {
                done += n
                continue
            }
            if n < 0 && errno == EINTR { continue }
            guard n < 0, errno == EAGAIN || errno == EWOULDBLOCK, wait(fd, for: POLLOUT, until: deadline) else { return false }
        }
        return true
    }

    /// Waits until `fd` is ready for `events` or shows an error or hang-up (the next call on it
    /// then tells which), across signals; false once `deadline` (`monotonicMs`; nil: never) passed
    /// or if poll(2) itself fails (which a retry would only repeat).
    static func wait(_ fd: Int32, for events: Int32, until deadline: UInt64?) -> Bool {
        var ready = pollfd(fd: fd, events: Int16(events), revents: 0)
        while true {
            var timeout: Int32 = -1
            if let deadline {
                let now = monotonicMs()
                guard now < deadline else { return false }
                timeout = Int32(min(deadline - now, UInt64(Int32.max)))
            }
            let n = poll(&ready, 1, timeout)
            if n > 0 { return true }
            if n < 0 && errno != EINTR { return false }
        }
    }

    /// Takes frames from one end of the channel. It receives whatever the channel holds in one
    /// call and parses from that, where reading field by field took five calls per request. And it
    /// sleeps in poll(2) for input, never in recv(2): both ends of a Unix socket pair wait on one
    /// queue per socket for input and for room to write, so a side blocked in recv was woken each
    /// time the other side read what it had sent (the room freed), only to find nothing and sleep
    /// again; a poll for input is not woken for room. On the replay helper that was a needless
    /// wake-up for most changes replayed (Docs/filesystem.md §The replay helper).
    struct Reader {
        let fd: Int32
        private(set) var lastReplyCode: Int32?
        /// Whether the last read failed because its deadline passed, not at the channel's end.
        private(set) var timedOut = false
        /// Received and not yet taken: `pending[taken...]`.
        private var pending: [UInt8] = []
        private var taken = 0

        init(fd: Int32) { self.fd = fd }

        /// Takes exactly `count` bytes; nil at EOF, on an error, or once `deadline`
        /// (`monotonicMs`; nil: never) passed (`timedOut`).
        mutating func read(_ count: Int, until deadline: UInt64? = nil) -> [UInt8]? {
            while pending.count - taken < count {
                guard receive(until: deadline) else { return nil }
            }
            defer { taken += count }
            return Array(pending[taken..<taken + count])
        }

        /// Appends what the channel holds now, waiting for input if it holds nothing; false at EOF,
        /// on an error, or past the deadline.
        private mutating func receive(until deadline: UInt64?) -> Bool {
            if taken > 0 {
                pending.removeFirst(taken)
                taken = 0
            }
            timedOut = false
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, Int32(MSG_DONTWAIT)) }
                if n > 0 {
                    pending += chunk[0..<n]
                    return true
                }
                if n == 0 { return false }
                if errno == EINTR { continue }
                guard errno == EAGAIN || errno == EWOULDBLOCK else { return false }
                guard Wire.wait(fd, for: POLLIN, until: deadline) else {
                    timedOut = deadline.map { monotonicMs() >= $0 } ?? false
                    return false
                }
            }
        }

        mutating func u32(until deadline: UInt64? = nil) -> UInt32? {
            read(4, until: deadline).map { $0.reduce(0) { $0 << 8 | UInt32($1) } }
        }

        mutating func nextRequest() -> (ReplayHelper.Operation, String, [UInt8])? {
            guard let op = read(1), let operation = ReplayHelper.Operation(rawValue: op[0]),
                let pathLength = u32(), pathLength <= Wire.maxPathBytes, let path = read(Int(pathLength)),
                let dataLength = u32(), dataLength <= Wire.maxDataBytes, let data = read(Int(dataLength))
            else { return nil }
            return (operation, String(decoding: path, as: UTF8.self), data)
        }

        /// The next reply, waited for until `deadline` (`monotonicMs`; nil: for ever).
        mutating func nextReply(until deadline: UInt64? = nil) -> (Int32, UInt64)? {
            guard let code = u32(until: deadline), let high = u32(until: deadline), let low = u32(until: deadline) else { return nil }
            lastReplyCode = Int32(bitPattern: code)
            return (Int32(bitPattern: code), UInt64(high) << 32 | UInt64(low))
        }
    }
}

/// Milliseconds of a clock that does not jump with the wall clock, for deadlines.
func monotonicMs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
}
