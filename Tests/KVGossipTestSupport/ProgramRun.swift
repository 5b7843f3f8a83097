import Foundation

/// Runs a program to its end with its standard output and error in one pipe, for tests that look
/// at what it printed and how it exited.
public enum ProgramRun {
    /// `input`: what the program reads on its standard input, to its end (nil: the test's own).
    /// It comes from a file, not a pipe: written into a pipe before the program runs, input larger
    /// than the pipe holds would block the test for good.
    public static func combined(_ executable: String, _ arguments: [String], input: Data? = nil) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        if let input {
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-input-\(UUID().uuidString)")
            try input.write(to: file)
            p.standardInput = try FileHandle(forReadingFrom: file)
            // Gone from the directory at once; the open handle keeps it readable.
            try? FileManager.default.removeItem(at: file)
        }
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, output)
    }
}
