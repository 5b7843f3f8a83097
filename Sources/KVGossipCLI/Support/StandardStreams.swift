import Foundation
import Glibc
import Synchronization

/// The CLI's `print`: the same text as the standard library's, kept in `StandardStreams`' buffer
/// instead of C's stdio, whose write errors nobody sees (a `status > /dev/full` used to exit 0).
func print(_ items: Any..., separator: String = " ", terminator: String = "\n") {
    StandardStreams.buffer(items.map { "\($0)" }.joined(separator: separator) + terminator)
}

/// Standard output and input without Foundation's `FileHandle`, which traps on any error: a reader
/// that went away (`kvgossip get … | head -c1`), a full disk behind `> file`, or a directory given
/// as standard input end the command with a message and status 1 instead.
enum StandardStreams {
    private static let printed = Mutex(Data())

    /// Keeps `text` for the next flush; writes once 64 KiB are kept.
    static func buffer(_ text: String) {
        let full = printed.withLock { kept in
            kept.append(contentsOf: text.utf8)
            return kept.count >= 64 * 1024
        }
        if full { flushPrinted() }
    }

    /// Writes all of `data` to standard output, after what `print` has kept.
    static func write(_ data: Data) {
        flushPrinted()
        writeOut(data)
    }

    /// Writes what `print` has kept. Called by commands that stream (each page of `ls`, each event
    /// of `watch`) and after every command, so a failure to write is seen while it can still fail
    /// the command.
    static func flushPrinted() {
        writeOut(printed.withLock { kept in
            defer { kept.removeAll(keepingCapacity: true) }
            return kept
        })
    }

    private static func writeOut(_ data: Data) {
        data.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(STDOUT_FILENO, base + offset, raw.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n < 0 { outputFailed(errno) }
                offset += n
            }
        }
    }

    /// A closed pipe ends the command quietly, as it ends most tools that write to one.
    private static func outputFailed(_ code: Int32) -> Never {
        if code != EPIPE {
            let message = "kvgossip: cannot write the output: \(String(cString: strerror(code)))\n"
            _ = message.withCString { Glibc.write(STDERR_FILENO, $0, strlen($0)) }
        }
        exit(1)
    }

    /// Standard input, read until its end or until it holds more than `limit` bytes: the caller
    /// judges the size, and a huge input costs no more memory than the largest value it could be.
    static func readInput(limit: Int) throws -> Data {
        var out = Data()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(STDIN_FILENO, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw CLIError("cannot read the value from standard input: \(String(cString: strerror(errno)))") }
            if n == 0 { return out }
            out.append(contentsOf: buffer[0..<n])
            if out.count > limit { return out }
        }
    }
}
