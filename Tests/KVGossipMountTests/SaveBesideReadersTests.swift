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
                let (reader, output) = try Self.shell(fx, "cat app/r; stat -c %s app/r")
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

        /// A writer's OPEN is answered by the worker holding the read turn (RequestReader.kind), and
        /// its handler needs the mutation lock, which a save holds while the store waits. Finding the
        /// lock taken, it gives the turn up before waiting, so readers of other files are still
        /// served; keeping it would leave every request unread until the save ended.
        @Test func aWritersOpenWaitingBehindASaveLeavesReadersServed() throws {
            try withMount(seed: ["/app/r": "read me\n", "/app/w": "old\n", "/app/x": "old\n"]) { fx throws in
                let lock = try SQLiteWriteLock(database: fx.directory + "/data/" + Store.fileName)
                defer { lock.release() }
                let saver = try Self.python(fx, "import os\nfd = os.open('app/w', os.O_WRONLY | os.O_TRUNC)\nos.write(fd, b'new\\n')\nos.close(fd)")
                defer { saver.waitUntilExit() }
                #expect(Readiness.wait(timeout: 20) { Self.inSyscall(saver, 3) }, "the save waits in close(2)")
                // The second writer's open waits for the save (openat is syscall 257).
                let opener = try Self.python(fx, "import os\nfd = os.open('app/x', os.O_WRONLY | os.O_TRUNC)\nos.write(fd, b'next\\n')\nos.close(fd)")
                defer { opener.waitUntilExit() }
                #expect(Readiness.wait(timeout: 20) { Self.inSyscall(opener, 257) }, "the second writer waits in open(2)")
                let (reader, output) = try Self.shell(fx, "cat app/r")
                let served = Readiness.wait(timeout: 5) { !reader.isRunning }
                #expect(served, "the read waited behind the second writer's open")
                #expect(saver.isRunning && opener.isRunning, "both writers should still wait for the store")
                lock.release()
                saver.waitUntilExit()
                opener.waitUntilExit()
                reader.waitUntilExit()
                #expect(String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) == "read me\n")
                #expect(saver.terminationStatus == 0 && opener.terminationStatus == 0)
                #expect(fx.sh("cat app/w app/x").stdout == "new\nnext\n")
            }
        }

        /// A RELEASE is answered by the worker holding the read turn too, and the RELEASE of a file
        /// created read-only saves it (no FLUSH came). The save gives the turn up before minting
        /// (`MountCore.commitOutsideLock`), so while the store waits, readers are still served.
        @Test func aSaveAtReleaseLeavesReadersServed() throws {
            try withMount(seed: ["/app/r": "read me\n"]) { fx throws in
                let lock = try SQLiteWriteLock(database: fx.directory + "/data/" + Store.fileName)
                defer { lock.release() }
                // close(2) does not wait for the RELEASE, so the creator exits while its save waits.
                let creator = try Self.python(fx, "import os\nos.close(os.open('app/new', os.O_CREAT | os.O_RDONLY, 0o644))")
                creator.waitUntilExit()
                #expect(creator.terminationStatus == 0)
                let (reader, output) = try Self.shell(fx, "cat app/r")
                let served = Readiness.wait(timeout: 5) { !reader.isRunning }
                #expect(served, "the read waited behind the save at release")
                lock.release()
                reader.waitUntilExit()
                #expect(String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) == "read me\n")
                #expect(Readiness.wait { (try? fx.store.record(Key("/app/new")))??.value == [] })
            }
        }

        static func python(_ fx: MountFixture, _ code: String) throws -> Process {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            process.arguments = ["-c", code]
            process.currentDirectoryURL = URL(fileURLWithPath: fx.mountpoint)
            try process.run()
            return process
        }

        static func inSyscall(_ process: Process, _ number: Int) -> Bool {
            let text = (try? String(contentsOfFile: "/proc/\(process.processIdentifier)/syscall", encoding: .utf8)) ?? ""
            return text.hasPrefix("\(number) ")
        }

        /// A shell command run in the mount, its output piped back.
        static func shell(_ fx: MountFixture, _ command: String) throws -> (Process, Pipe) {
            let reader = Process()
            reader.executableURL = URL(fileURLWithPath: "/bin/sh")
            reader.arguments = ["-c", command]
            reader.currentDirectoryURL = URL(fileURLWithPath: fx.mountpoint)
            let output = Pipe()
            reader.standardOutput = output
            try reader.run()
            return (reader, output)
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
