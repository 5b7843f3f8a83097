import Foundation
import KVGossipCore
import KVGossipNode
import KVGossipStore
import KVGossipTestSupport
import Logging
import Synchronization
@testable import KVGossipSync

/// An engine in this process serving sync on a free loopback port, its node holding the root key,
/// for tests that speak to it with a `LinkSpeaker`. With `running`, its clock loop and commit
/// observer run too (`GossipEngine.run`), so its writes are pushed and its repairs happen.
final class ServedEngine: Sendable {
    let root: SigningKey
    let engine: GossipEngine
    let port: Int
    let directory: String
    private let serving: Task<Void, any Error>
    private let running: Task<Void, Never>?

    init(root: SigningKey = .generate(), running: Bool = false, _ configure: (inout GossipEngine.Options) -> Void) async throws {
        self.root = root
        directory = NSTemporaryDirectory() + "kvg-served-engine-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let store = try Store(directory: directory, root: root.publicKey)
        var options = GossipEngine.Options(nodeName: "served", syncPort: 0)
        configure(&options)
        let engine = GossipEngine(node: try Node(store: store, key: root), options: options, logger: Logger(label: "served-engine"))
        self.engine = engine
        let bound = Atomic<Int>(0)
        serving = Task { try await engine.serve(host: "127.0.0.1", port: 0) { bound.store($0, ordering: .releasing) } }
        self.running = running ? Task { await engine.run() } : nil
        guard await Readiness.waitAsync(timeout: .seconds(10), { bound.load(ordering: .acquiring) != 0 }) else {
            serving.cancel()
            self.running?.cancel()
            throw CancellationError()
        }
        port = bound.load(ordering: .acquiring)
    }

    /// A peer linked to the engine, announcing `syncPort` as where it serves sync.
    func speaker(syncPort: UInt16 = 1) async throws -> LinkSpeaker {
        let (port, root) = (port, root)
        return try await OwnThread.run {
            try LinkSpeaker(port: port, cluster: root.publicKey, credentials: LinkSpeaker.credentials(root, syncPort: syncPort), timeout: 15)
        }
    }

    func stop() {
        serving.cancel()
        running?.cancel()
        try? FileManager.default.removeItem(atPath: directory)
    }
}
