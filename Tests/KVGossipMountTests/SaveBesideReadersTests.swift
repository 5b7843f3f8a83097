import Foundation
import KVGossipCore
import KVGossipStore
import KVGossipTestSupport
import Testing

/// A save is minted outside the lock the readers need (Docs/filesystem.md §Reading): while SQLite
/// waits for the disk, other files stay readable.
extension MountTests {
    @Suite struct SaveBesideReadersTests {
        @Test func aReaderIsServedWhileASaveWaitsForTheStore() throws {
            try withMount(seed: ["/app/r": "read me\n", "/app/w": "old\n"]) { fx throws in
                // Another process holds SQLite's write lock, so the mount's next save waits in the
                // store (its busy wait) until the lock is given back.
                let lock = try SQLiteWriteLock(database: fx.directory + "/data/" + Store.fileName)
                defer { lock.release() }
                let saver = Process()
                saver.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
                saver.arguments = ["-c", "import os\nfd = os.open('app/w', os.O_WRONLY | os.O_TRUNC)\nos.write(fd, b'new\\n')\nos.close(fd)"]
                saver.currentDirectoryURL = URL(fileURLWithPath: fx.mountpoint)
                try saver.run()
                defer {
                    lock.release()
                    saver.waitUntilExit()
                }
                // The saver sits in close(2) (syscall 3): its FLUSH is being committed.
                let inClose = Readiness.wait(timeout: 20) {
                    let text = (try? String(contentsOfFile: "/proc/\(saver.processIdentifier)/syscall", encoding: .utf8)) ?? ""
                    return text.hasPrefix("3 ")
                }
                #expect(inClose)
                // A reader of another key, waited for by asking whether it exited: one stuck in a
                // request cannot be killed, so it is only collected after the lock is given back.
                let reader = Process()
                reader.executableURL = URL(fileURLWithPath: "/bin/sh")
                reader.arguments = ["-c", "cat app/r; stat -c %s app/r"]
                reader.currentDirectoryURL = URL(fileURLWithPath: fx.mountpoint)
                let output = Pipe()
                reader.standardOutput = output
                try reader.run()
                let served = Readiness.wait(timeout: 5) { !reader.isRunning }
                #expect(served, "the read waited for the save")
                #expect(saver.isRunning, "the save should still wait for the store")
                lock.release()
                saver.waitUntilExit()
                reader.waitUntilExit()
                #expect(String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) == "read me\n8\n")
                #expect(saver.terminationStatus == 0)
                #expect(fx.sh("cat app/w").stdout == "new\n")
                #expect(try fx.store.record(Key("/app/w"))?.value == Array("new\n".utf8))
            }
        }
    }
}

/// `sqlite3 DATABASE` holding `BEGIN IMMEDIATE` (the write lock) until `release`.
final class SQLiteWriteLock: @unchecked Sendable {
    private let process = Process()
    private let input = Pipe()
    private var released = false

    init(database: String) throws {
        let output = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        process.arguments = [database]
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(Data("BEGIN IMMEDIATE;\nSELECT 'locked';\n".utf8))
        // Asked, not slept: sqlite3 prints once the lock is held.
        var seen = ""
        while !seen.contains("locked") {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { throw SQLiteLockError() }
            seen += String(decoding: chunk, as: UTF8.self)
        }
    }

    func release() {
        guard !released else { return }
        released = true
        input.fileHandleForWriting.write(Data("ROLLBACK;\n.quit\n".utf8))
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }

    struct SQLiteLockError: Error {}
}
