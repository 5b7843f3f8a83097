import Foundation
import KVGossipCore
import KVGossipNode
import KVGossipStore
import Logging
import Testing
@testable import KVGossipMount

enum Keys {
    static func key(_ n: UInt8) -> SigningKey { SigningKey(seed: [UInt8](repeating: n, count: 32))! }
    static let root = key(1)
    static let alice = key(2)

    /// A grant from the root to `issuee`, valid from a minute ago.
    static func grant(to issuee: SigningKey, _ patterns: [String]) -> Grant {
        try! Grant(
            cluster: root.publicKey, issuer: root, issuee: issuee.publicKey, patterns: patterns.map { try! Pattern($0) },
            mayDelegate: false, notBefore: Store.systemClockMs() - 60_000, expires: nil, nonce: [UInt8](repeating: 7, count: 16))
    }
}

/// A real store and node in a temporary directory, mounted; always unmounted and removed by
/// `withMount`, whatever the test does.
final class MountFixture: @unchecked Sendable {
    let directory: String
    let mountpoint: String
    let store: Store
    let node: Node
    let mount: Mount
    let recorder: ChangeRecorder

    /// - Parameters:
    ///   - nodeKey: the node's own key (the root by default: it may write everything).
    ///   - seed: keys stored before mounting, signed by the root.
    init(nodeKey: SigningKey = Keys.root, grants: [Grant] = [], seed: [String: String] = [:], options: MountOptions = MountOptions()) throws {
        let base = "/tmp/kvg-mount-tests"
        directory = base + "/" + UUID().uuidString.prefix(8).lowercased()
        mountpoint = directory + "/mnt"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        store = try Store(directory: directory + "/data", root: Keys.root.publicKey)
        var logger = Logger(label: "kvgossip.mount.test")
        logger.logLevel = ProcessInfo.processInfo.environment["KVG_MOUNT_DEBUG"] == nil ? .warning : .debug
        node = try Node(store: store, key: nodeKey, logger: logger)
        if !grants.isEmpty { _ = try node.addGrants(grants) }
        for (key, value) in seed.sorted(by: { $0.key < $1.key }) {
            try MountFixture.rootMint(store, key, value)
        }
        recorder = ChangeRecorder(store)
        var options = options
        // This test process is not `kvgossip`: its helper is the built binary's, unless a test
        // chose a command of its own.
        if options.helperCommand == MountOptions().helperCommand { options.helperCommand = [MountFixture.kvgossipBinary, "mount-helper"] }
        mount = Mount(node: node, mountpoint: mountpoint, options: options, logger: logger)
        try mount.start()
    }

    /// The built `kvgossip` binary, whose `mount-helper` the mount spawns (this test process is not it).
    static var kvgossipBinary: String {
        if let env = ProcessInfo.processInfo.environment["KVGOSSIP_BIN"] { return env }
        // Tests/KVGossipMountTests/Support/MountFixture.swift → package root.
        var root = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { root = root.deletingLastPathComponent() }
        return root.appendingPathComponent(".build/debug/kvgossip").path
    }

    /// A change made elsewhere: signed by the root and stored directly, not through the mount.
    func rootMint(_ key: String, _ value: String?) throws {
        try MountFixture.rootMint(store, key, value)
    }

    static func rootMint(_ store: Store, _ key: String, _ value: String?) throws {
        let (_, outcome) = try store.mint(key: try Key(key), value: value.map { Array($0.utf8) }, signer: Keys.root, pool: [])
        #expect(outcome == .accepted)
    }

    func path(_ key: String) -> String { mountpoint + key }

    /// `/bin/sh -c script` inside the mountpoint.
    @discardableResult
    func sh(_ script: String, timeout: Double = 20) -> ShellResult {
        Shell.run(script, in: mountpoint, timeout: timeout)
    }

    /// Live keys and their values, straight from the store.
    func values() throws -> [String: String] {
        var result: [String: String] = [:]
        for record in try store.records(under: nil) where record.kind == .value {
            result[record.key.path] = String(decoding: record.value, as: UTF8.self)
        }
        return result
    }

    func tombstones() throws -> Set<String> {
        Set(try store.records(under: nil).filter { $0.kind == .tombstone }.map(\.key.path))
    }

    /// Records committed since `mark` once `expected` have arrived and no file is open in the mount
    /// (so no save is still to commit).
    func settle(from mark: Int, expected: Int) -> [Record] {
        recorder.settle(from: mark, expected: expected) { mount.debugOpenFileCount() == 0 }
    }

    /// The mount's internal state, for checks no program can make (hidden keys pending).
    func hiddenKeys() -> [String] {
        mount.debugHiddenKeys()
    }

    func close() {
        mount.stop()
        recorder.stop()
        if !StaleMount.entries(at: mountpoint).isEmpty {
            _ = Shell.run("fusermount3 -uz '\(mountpoint)'", timeout: 10)
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Runs `body` against a fresh mount and tears it down even when the test fails or throws.
func withMount(
    nodeKey: SigningKey = Keys.root, grants: [Grant] = [], seed: [String: String] = [:], options: MountOptions = MountOptions(),
    _ body: (MountFixture) throws -> Void
) throws {
    let fixture = try MountFixture(nodeKey: nodeKey, grants: grants, seed: seed, options: options)
    defer { fixture.close() }
    try body(fixture)
}
