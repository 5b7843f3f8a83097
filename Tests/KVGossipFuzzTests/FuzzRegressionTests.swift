import Foundation
import KVGossipFuzzTargets
import Testing

/// The fuzz targets' checks without a sanitizer (Docs/security.md §Fuzzing): every input libFuzzer
/// ever found (kept in Tests/Fixtures/fuzz-regressions/<target>/) must still decode without a crash
/// and keep its invariants, and the seeds must decode, so no check passes by refusing everything.
@Suite struct FuzzRegressionTests {
    /// The package root: this file is `Tests/KVGossipFuzzTests/FuzzRegressionTests.swift`.
    static let corpus = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/fuzz-regressions")

    static let names = FuzzTargets.all.map(\.name)

    @Test(arguments: names)
    func regressionInputsKeepTheirInvariants(name: String) throws {
        let target = try #require(FuzzTargets.named(name))
        let dir = Self.corpus.appendingPathComponent(name)
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        for file in files.sorted() {
            let input = try [UInt8](Data(contentsOf: dir.appendingPathComponent(file)))
            let outcome = target.check(input)
            #expect(outcome == .refused || outcome == .decoded, "\(name)/\(file): \(outcome)")
        }
    }

    @Test(arguments: names)
    func seedsDecodeAndKeepTheirInvariants(name: String) throws {
        let target = try #require(FuzzTargets.named(name))
        let seeds = target.seeds()
        #expect(!seeds.isEmpty)
        for (index, seed) in seeds.enumerated() {
            #expect(seed.count <= target.maxInputBytes, "\(name) seed \(index) is larger than the fuzzer's inputs")
            #expect(target.check(seed) == .decoded, "\(name) seed \(index)")
        }
    }

    /// A directory named after no target would never be replayed.
    @Test func everyRegressionDirectoryNamesATarget() throws {
        let dirs = (try? FileManager.default.contentsOfDirectory(atPath: Self.corpus.path)) ?? []
        #expect(Set(dirs).subtracting(Self.names).isEmpty, "\(dirs)")
    }
}
