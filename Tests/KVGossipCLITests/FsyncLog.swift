import Foundation
import KVGossipTestSupport

/// The fsync-log shim (Fixtures/fsync-log.c) for one test: built into the test's directory, put
/// into an agent's environment, and its log read back.
struct FsyncLog {
    /// The shim's source: `Tests/KVGossipCLITests/Fixtures/fsync-log.c`.
    static let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/fsync-log.c").path

    let library: String
    let path: String

    /// Compiles the shim into `cli`'s directory; the log goes there too.
    init(in cli: CLIProcess, name: String = "fsync") throws {
        library = cli.path("fsync-log.so")
        path = cli.path("\(name).log")
        if !FileManager.default.fileExists(atPath: library) {
            try CFixture.compile(FsyncLog.source, to: library, flags: ["-shared", "-fPIC", "-O1"], libraries: ["-ldl"])
        }
    }

    /// What an agent's environment needs for every sync it makes to be logged here.
    var environment: [String: String] { ["LD_PRELOAD": library, "KVG_FSYNC_LOG": path] }

    /// One line of the log: the call, what it returned, and the synced file's path.
    struct Entry {
        let call: String
        let result: Int
        let file: String
    }

    var entries: [Entry] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", maxSplits: 2)
            guard fields.count == 3, let result = Int(fields[1]) else { return nil }
            return Entry(call: String(fields[0]), result: result, file: String(fields[2]))
        }
    }

    /// Successful syncs of the store's write-ahead log so far.
    var walSyncs: Int { entries.filter { $0.result == 0 && $0.file.hasSuffix("kvgossip.sqlite-wal") }.count }
}
