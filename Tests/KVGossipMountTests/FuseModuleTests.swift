import Foundation
import Testing
@testable import KVGossipMount

/// The `fuse` module's `wake_here`, which the mount names in its log line (Docs/filesystem.md
/// §Waking the caller where the answer is): read where the kernel has it, absent where it does not.
@Suite struct FuseModuleTests {
    @Test func wakeHereIsReadWithoutItsNewlineAndIsNilWhereTheKernelHasNone() throws {
        let parameter = "/tmp/kvg-fuse-module-\(getpid())-wake_here"
        defer { unlink(parameter) }
        try "Y\n".write(toFile: parameter, atomically: false, encoding: .utf8)
        #expect(FuseModule.wakeHere(parameter: parameter) == "Y")
        unlink(parameter)
        #expect(FuseModule.wakeHere(parameter: parameter) == nil)
    }
}
