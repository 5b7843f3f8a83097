// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "KVGossip",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "kvgossip", targets: ["KVGossipCLI"]),
        .executable(name: "kvgossip-bench", targets: ["KVGossipBench"]),
        .library(name: "KVGossipCore", targets: ["KVGossipCore"]),
        .library(name: "KVGossipClient", targets: ["KVGossipClient"]),
        // For the libFuzzer package in Fuzz/ only (Docs/security.md §Fuzzing).
        .library(name: "KVGossipFuzzTargets", targets: ["KVGossipFuzzTargets"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/stencilproject/Stencil", from: "0.15.1"),
    ],
    targets: [
        // libsodium: Ed25519 signatures and BLAKE2b hashing.
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),

        // libfuse3's low-level API.
        .systemLibrary(name: "CFuse3", pkgConfig: "fuse3", providers: [.apt(["libfuse3-dev"])]),

        // A file's device and inode without marking its timestamps as seen (statx, which the Glibc module hides).
        .target(name: "CFileIdentity"),

        // A SQLite VFS that writes each commit's log frames in one call (Docs/architecture.md §Durability).
        .target(name: "CWALFrames", linkerSettings: [.linkedLibrary("sqlite3")]),

        // Child processes started with only the descriptors they are given, and how they ended.
        .target(name: "KVGossipProcess"),

        // The rules, with no I/O: keys, patterns, signed objects, authority, ordering, Merkle summary.
        .target(name: "KVGossipCore", dependencies: ["CSodium"]),

        // Durable state in SQLite: records, revocations and the persisted Merkle summary.
        // The gossip rules of the core run at any scale in simulated time (a simulated network, toy stores).
        .target(name: "KVGossipSimulation", dependencies: ["KVGossipCore"]),
        .target(
            name: "KVGossipStore",
            dependencies: [
                "CFileIdentity",
                "CWALFrames",
                "KVGossipCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // One host's view: store + node key + grants, minting, writability, key states.
        .target(
            name: "KVGossipNode",
            dependencies: ["KVGossipCore", "KVGossipStore", .product(name: "Logging", package: "swift-log")]
        ),

        // The filesystem view: keys as files, signed writes on close, xattrs, inotify for remote changes.
        .target(
            name: "KVGossipMount",
            dependencies: ["CFuse3", "KVGossipCore", "KVGossipStore", "KVGossipNode", "KVGossipProcess", .product(name: "Logging", package: "swift-log")]
        ),

        // Length-prefixed framing shared by the control API and sync connections.
        .target(
            name: "KVGossipNet",
            dependencies: ["KVGossipCore", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")]
        ),

        // The control API: framed JSON over a Unix socket (and optionally TCP), server and client.
        .target(
            name: "KVGossipControl",
            dependencies: [
                "KVGossipCore", "KVGossipStore", "KVGossipNode", "KVGossipNet",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // The Serf shell: msgpack, the RPC client, membership and the embedded agent. Knows only Serf.
        .target(
            name: "KVGossipSerf",
            dependencies: [
                "KVGossipProcess",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Sync sessions over TCP and the gossip engine that triggers them.
        .target(
            name: "KVGossipSync",
            dependencies: [
                "KVGossipCore", "KVGossipStore", "KVGossipNode", "KVGossipNet",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // The Swift client library: subscriptions with value and dirtiness streams, failover.
        .target(
            name: "KVGossipClient",
            dependencies: ["KVGossipCore", "KVGossipControl", .product(name: "Logging", package: "swift-log")]
        ),
        // Templates rendered from the tree: helpers, dependencies, snapshots, the wait window, output
        // decisions. Pure rules; `kvgossip template` does the I/O (Docs/templates.md).
        .target(
            name: "KVGossipTemplate",
            dependencies: ["KVGossipCore", "KVGossipClient", .product(name: "Stencil", package: "Stencil")]
        ),
        .executableTarget(name: "ConfigWatcherExample", dependencies: ["KVGossipClient", "KVGossipCore"], path: "Examples/ConfigWatcher"),

        // The `kvgossip` command.
        .executableTarget(
            name: "KVGossipCLI",
            dependencies: [
                "KVGossipCore",
                "KVGossipStore",
                "KVGossipNode",
                "KVGossipControl",
                "KVGossipSync",
                "KVGossipSerf",
                "KVGossipMount",
                "KVGossipClient",
                "KVGossipTemplate",
                "KVGossipProcess",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),

        // Figures for the speed and memory targets, each beside a baseline measured in the same run.
        .executableTarget(
            name: "KVGossipBench",
            dependencies: [
                "KVGossipCore", "KVGossipStore", "KVGossipNode", "KVGossipSync", "KVGossipControl", "KVGossipSerf",
                "KVGossipClient", "KVGossipSimulation", "KVGossipTestSupport", "KVGossipMount", "KVGossipProcess", "CFuse3",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Helpers shared by the test targets and the benchmark (a seeded generator, a free loopback
        // port, a generator of large trees).
        .target(name: "KVGossipTestSupport", dependencies: ["KVGossipCore", "KVGossipStore"], path: "Tests/KVGossipTestSupport"),
        // The `.integration` trait: a shared budget for tests that start processes and mounts, and
        // threads of their own so their blocking waits never starve the cooperative pool.
        .target(name: "KVGossipTestTraits", path: "Tests/KVGossipTestTraits"),
        // Each decoder of outside bytes with the invariants its input must keep: run by libFuzzer from
        // Fuzz/ (Scripts/fuzz) and, over the regression corpus, by KVGossipFuzzTests.
        .target(
            name: "KVGossipFuzzTargets", dependencies: ["KVGossipCore", "KVGossipControl", "KVGossipSerf"],
            path: "Tests/KVGossipFuzzTargets"),
        .testTarget(name: "KVGossipCoreTests", dependencies: ["KVGossipCore", "KVGossipTestSupport"]),
        .testTarget(name: "KVGossipSimulationTests", dependencies: ["KVGossipSimulation", "KVGossipCore"]),
        .testTarget(name: "KVGossipStoreTests", dependencies: ["KVGossipStore", "CWALFrames", "KVGossipTestSupport", "KVGossipTestTraits"]),
        .testTarget(
            name: "KVGossipNetTests",
            dependencies: [
                "KVGossipNet", "KVGossipTestSupport",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            ]),
        .testTarget(
            name: "KVGossipControlTests", dependencies: ["KVGossipControl", "KVGossipCore", "KVGossipNet", "KVGossipNode", "KVGossipStore", "KVGossipTestSupport"]),
        .testTarget(name: "KVGossipFuzzTests", dependencies: ["KVGossipFuzzTargets"]),
        // Fixtures/ holds C sources (an LD_PRELOAD shim, a FUSE filesystem) that tests compile at run time.
        .testTarget(
            name: "KVGossipCLITests", dependencies: ["KVGossipCore", "KVGossipTestSupport", "KVGossipTestTraits"], exclude: ["Fixtures"]),
        .testTarget(
            name: "KVGossipSyncTests",
            dependencies: [
                "KVGossipSync", "KVGossipNode", "KVGossipStore", "KVGossipCore", "KVGossipTestSupport",
                .product(name: "Logging", package: "swift-log"), .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]),
        .testTarget(name: "KVGossipProcessTests", dependencies: ["KVGossipProcess"]),
        .testTarget(name: "KVGossipSerfTests", dependencies: ["KVGossipSerf", "KVGossipTestSupport", "KVGossipTestTraits"]),
        .testTarget(
            name: "KVGossipMountTests",
            dependencies: ["KVGossipMount", "KVGossipNode", "KVGossipStore", "KVGossipCore", "KVGossipTestSupport", "KVGossipTestTraits"]),
        .testTarget(name: "KVGossipTemplateTests", dependencies: ["KVGossipTemplate", "KVGossipClient", "KVGossipCore"]),
        .testTarget(
            name: "KVGossipClientTests",
            dependencies: ["KVGossipClient", "KVGossipControl", "KVGossipCore", "KVGossipTestSupport", "KVGossipTestTraits"]),
    ],
    swiftLanguageModes: [.v6]
)
