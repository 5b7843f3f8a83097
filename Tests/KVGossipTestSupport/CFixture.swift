import Foundation

/// C programs kept beside the tests as fixtures (an LD_PRELOAD shim, a FUSE filesystem), compiled
/// by the test that uses them into its own temporary directory, so what runs is always the source
/// in the repository.
public enum CFixture {
    /// The C compiler on the PATH (`cc`), nil when there is none.
    public static var compiler: String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/cc" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Why fixtures cannot be compiled here, nil when they can.
    public static var unavailableReason: String? {
        compiler == nil ? "no C compiler: `cc` is not on the PATH (Scripts/install-deps installs gcc)" : nil
    }

    /// `cc FLAGS -o OUTPUT SOURCE LIBRARIES`; throws with the compiler's messages when it fails.
    public static func compile(_ source: String, to output: String, flags: [String] = [], libraries: [String] = []) throws {
        guard let compiler else { throw CFixtureError(unavailableReason!) }
        let (status, text) = try run(compiler, flags + ["-o", output, source] + libraries)
        guard status == 0 else { throw CFixtureError("`cc` failed on \(source) (\(status)):\n\(text)") }
    }

    /// `pkg-config --cflags --libs PACKAGE`, as arguments.
    public static func pkgConfig(_ package: String) throws -> [String] {
        let (status, text) = try run("/usr/bin/env", ["pkg-config", "--cflags", "--libs", package])
        guard status == 0 else { throw CFixtureError("pkg-config knows no \(package) (\(status)): \(text)") }
        return text.split(whereSeparator: \.isWhitespace).map(String.init)
    }

    private static func run(_ executable: String, _ arguments: [String]) throws -> (Int32, String) {
        try ProgramRun.combined(executable, arguments)
    }
}

public struct CFixtureError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
