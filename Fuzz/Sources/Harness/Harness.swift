import CLibFuzzer
import Glibc
import KVGossipFuzzTargets

/// One binary serves every target: KVGOSSIP_FUZZ_TARGET names the one to run (Scripts/fuzz sets
/// it; `list` prints the names), and KVGOSSIP_FUZZ_WRITE_SEEDS=DIR makes the binary write that
/// target's seeds, dictionary and input size limit into DIR instead of fuzzing. Any other
/// arguments are libFuzzer's.
@main
enum Harness {
    /// Chosen once, before the first input.
    nonisolated(unsafe) static var target: FuzzTarget?

    static func main() {
        let name = environment("KVGOSSIP_FUZZ_TARGET") ?? ""
        if name == "list" {
            print(FuzzTargets.all.map(\.name).joined(separator: "\n"))
            return
        }
        guard let chosen = FuzzTargets.named(name) else {
            complain("set KVGOSSIP_FUZZ_TARGET to one of: \(FuzzTargets.all.map(\.name).joined(separator: " "))")
            exit(2)
        }
        if let dir = environment("KVGOSSIP_FUZZ_WRITE_SEEDS") {
            writeSeeds(of: chosen, into: dir)
            // _exit: skip LeakSanitizer's exit check, which takes the seed objects held in globals
            // for leaks (pattern tokens behind enum payload pointers that carry tag bits, which it
            // cannot follow).
            _exit(0)
        }
        target = chosen
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, testOneInput))
    }
}

/// libFuzzer's callback: one input. Exported under libFuzzer's conventional name as well, which
/// its own main (linked whole, and overridden by SwiftPM's `main`) refers to.
@_cdecl("LLVMFuzzerTestOneInput")
func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if case .violated(let text) = Harness.target!.check(input) {
        // libFuzzer turns the abort into a crash report and saves the input.
        complain("invariant broken in \(Harness.target!.name): \(text)")
        abort()
    }
    return 0
}

/// A line on standard error (the C `stderr` global is not concurrency-safe to name).
private func complain(_ text: String) {
    let line = Array("kvgossip-fuzz: \(text)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

private func environment(_ name: String) -> String? {
    getenv(name).map { String(cString: $0) }
}

/// DIR/seeds/seed-N, DIR/dictionary (libFuzzer's format) and DIR/max_len.
private func writeSeeds(of target: FuzzTarget, into dir: String) {
    mkdir(dir + "/seeds", 0o755)
    for (index, seed) in target.seeds().enumerated() { writeFile(seed, to: "\(dir)/seeds/seed-\(index)") }
    let entries = target.dictionary.map { token in
        "\"" + token.utf8.map { byte in
            (0x20..<0x7f).contains(byte) && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\")
                ? String(UnicodeScalar(byte)) : "\\x" + String(byte, radix: 16).leftPadded(to: 2)
        }.joined() + "\""
    }
    writeFile(Array(entries.map { $0 + "\n" }.joined().utf8), to: dir + "/dictionary")
    writeFile(Array("\(target.maxInputBytes)\n".utf8), to: dir + "/max_len")
}

private func writeFile(_ bytes: [UInt8], to path: String) {
    guard let file = fopen(path, "wb") else {
        complain("cannot write \(path)")
        exit(1)
    }
    _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
    fclose(file)
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}
