import Foundation
import Glibc
import KVGossipTestSupport
import Testing

/// The powercut-fs fixture (Fixtures/powercut-fs.c) mounted for one test: a disk with a volatile
/// write cache, whose file data is durable only once fsync'd, and whose power the test can cut.
/// Unmounted and stopped by PID when the test is done, whether it passed or not.
final class PowerCutDisk: @unchecked Sendable {
    /// The filesystem's source: `Tests/KVGossipCLITests/Fixtures/powercut-fs.c`.
    static let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/powercut-fs.c").path

    let mountpoint: String
    let process = Process()
    let output = OutputCollector()
    private var control: String { mountpoint + "/.powercut" }

    /// What the disk says about itself (reading its control file).
    struct Report {
        var cuts = 0, dropped = 0, files = 0, open = 0, dead = 0, armed = 0
    }

    /// Whether this machine can compile the fixture; when not, the calling test records why and
    /// should stop.
    static func canBeBuilt(sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        guard let reason = CFixture.unavailableReason else { return true }
        Issue.record("cannot build powercut-fs: \(reason)", sourceLocation: sourceLocation)
        return false
    }

    /// Compiles the filesystem into `cli`'s directory and mounts it at `cli.path(name)`.
    init(in cli: CLIProcess, name: String = "disk") throws {
        let binary = cli.path("powercut-fs")
        try CFixture.compile(PowerCutDisk.source, to: binary, flags: ["-O1"], libraries: try CFixture.pkgConfig("fuse3"))
        mountpoint = cli.path(name)
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        process.executableURL = URL(fileURLWithPath: binary)
        // One thread (-s), so a cut falls between two operations; in the foreground (-f), so the
        // process is the filesystem and stops by its PID.
        process.arguments = ["-f", "-s", "-o", "default_permissions", mountpoint]
        process.standardOutput = output.pipe
        process.standardError = output.pipe
        try process.run()
        let mounted = Readiness.wait { !process.isRunning || Readiness.mountAnswers(at: mountpoint) }
        guard mounted, process.isRunning else {
            stop()
            throw CLIError("powercut-fs did not mount at \(mountpoint): \(output.output)")
        }
    }

    /// The disk's counters now.
    func report() throws -> Report {
        let fd = open(control, O_RDONLY)
        guard fd >= 0 else { throw CLIError("cannot open \(control): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { throw CLIError("cannot read \(control): \(String(cString: strerror(errno)))") }
        var report = Report()
        for field in String(decoding: buffer[0..<n], as: UTF8.self).split(whereSeparator: \.isWhitespace) {
            let pair = field.split(separator: "=")
            guard pair.count == 2, let value = Int(pair[1]) else { continue }
            switch pair[0] {
            case "cuts": report.cuts = value
            case "dropped": report.dropped = value
            case "files": report.files = value
            case "open": report.open = value
            case "dead": report.dead = value
            case "armed": report.armed = value
            default: break
            }
        }
        return report
    }

    /// Cuts the power: every file loses what was not fsync'd, and the disk fails all I/O until
    /// `powerOn`. Returns once the cut is done, with what it dropped.
    @discardableResult
    func cut() throws -> Report {
        try send("cut\n")
        return try report()
    }

    /// Makes the next fsync or fdatasync cut the power instead of syncing: a cut between a commit's
    /// writes and its sync. Returns at once; `report().cuts` tells when it happened.
    func cutAtNextSync() throws { try send("arm\n") }

    func powerOn() throws { try send("on\n") }

    private func send(_ command: String) throws {
        let fd = open(control, O_WRONLY)
        guard fd >= 0 else { throw CLIError("cannot open \(control): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let written = command.withCString { write(fd, $0, strlen($0)) }
        guard written == command.utf8.count else { throw CLIError("\(command) to \(control) failed: \(String(cString: strerror(errno)))") }
    }

    /// Unmounts (lazily if something still holds it) and stops the filesystem's process.
    func stop() {
        for flags in ["-u", "-uz"] where Readiness.mountAnswers(at: mountpoint) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/fusermount3")
            p.arguments = [flags, mountpoint]
            p.standardError = FileHandle(forWritingAtPath: "/dev/null")
            try? p.run()
            p.waitUntilExit()
        }
        process.stop(signal: SIGTERM, grace: 10)
    }

    deinit { stop() }
}
