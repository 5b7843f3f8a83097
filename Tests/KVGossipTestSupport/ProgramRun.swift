import Foundation

/// Runs a program to its end with its standard output and error in one pipe, for tests that look
/// at what it printed and how it exited.
public enum ProgramRun {
    /// `input`: written to the program's standard input, which is then closed (nil: the test's own).
    public static func combined(_ executable: String, _ arguments: [String], input: Data? = nil) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        if let input {
            let pipe = Pipe()
            try pipe.fileHandleForWriting.write(contentsOf: input)
            try pipe.fileHandleForWriting.close()
            p.standardInput = pipe.fileHandleForReading
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
