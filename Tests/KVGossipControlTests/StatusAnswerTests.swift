import Foundation
import KVGossipCore
import KVGossipNode
import KVGossipStore
import Testing
@testable import KVGossipControl

/// `status` is what an operator asks when something is wrong, the disk included.
struct StatusAnswerTests {
    @Test func aStoreThatCannotBeReadStillGetsAStatusThatSaysSo() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvg-status-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let root = SigningKey.generate()
        let store = try Store(directory: directory, root: root.publicKey)
        let node = try Node(store: store, key: root)
        _ = try node.mint(try Key("/app/a"), value: Array("1".utf8))
        let handler = ControlHandler(node: node, mountpoint: nil, health: { AgentHealth(problems: ["the disk failed"]) })
        let before = handler.status(ControlRequest(id: 1, op: .status), peers: [])
        #expect(before.ok && before.status?.records == 1 && before.status?.problems == ["the disk failed"], "\(before)")

        // Every read of the store now fails, as on a disk answering I/O errors.
        try store.close()
        let after = handler.status(ControlRequest(id: 2, op: .status), peers: [])
        #expect(after.ok, "\(after)")
        #expect(after.status?.treeHash == before.status?.treeHash && after.status?.records == 1, "the last counts stand in")
        let problems = after.status?.problems ?? []
        #expect(problems.first == "the disk failed", "\(problems)")
        #expect(problems.contains { $0.hasPrefix("status could not read the grants held from the store") }, "\(problems)")
    }
}
