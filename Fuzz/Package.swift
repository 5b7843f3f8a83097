// swift-tools-version: 6.1
// The libFuzzer harness (Docs/security.md §Fuzzing). A package of its own, so that the normal build
// never compiles or links it: Scripts/fuzz builds it with `-Xswiftc -sanitize=fuzzer,address`
// in a scratch path of its own. The checks live in the main package (KVGossipFuzzTargets), where the
// test suite replays the regression corpus with them.
import Foundation
import PackageDescription

/// SwiftPM names a path dependency after its directory, which differs between checkouts.
let mainPackage = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent.lowercased()

let package = Package(
    name: "KVGossipFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: "..")],
    targets: [
        .target(name: "CLibFuzzer"),
        .executableTarget(
            name: "kvgossip-fuzz",
            dependencies: ["CLibFuzzer", .product(name: "KVGossipFuzzTargets", package: mainPackage)],
            path: "Sources/Harness"),
    ],
    swiftLanguageModes: [.v6]
)
