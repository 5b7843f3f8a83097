import Foundation
import KVGossipClient
import KVGossipCore
import KVGossipTemplate

/// Records and snapshots built by hand for the pure template rules.
enum Fixture {
    static func record(_ key: String, _ value: String, signer: String = "ed25519:writer", tombstone: Bool = false, stamp: UInt64 = 1) -> KeyRecord {
        KeyRecord(
            key: key, value: Data(value.utf8), isTombstone: tombstone, timestamp: stamp, time: "2026-11-27T08:15:12.507Z",
            signer: signer, digest: "\(key)#\(value)#\(stamp)", chain: ["root"])
    }

    static func snapshot(_ patterns: [String], _ records: [KeyRecord]) -> Snapshot {
        Snapshot(patterns: Set(patterns.map { try! Pattern($0) }), answer: records)
    }

    static func patterns(_ texts: [String]) -> Set<Pattern> { Set(texts.map { try! Pattern($0) }) }

    static func render(_ text: String, _ snapshot: Snapshot) throws -> RenderOutcome {
        try TemplateRenderer([TemplateSource(name: "t.tmpl", text: text)]).render(snapshot)
    }

    /// Renders as the command does: discover, fetch what was asked from `tree`, render again,
    /// until the render needs nothing more. Returns the outcome and the number of rounds.
    static func renderFully(_ text: String, tree: [KeyRecord]) throws -> (RenderOutcome, rounds: Int) {
        var snapshot = Snapshot.empty
        for round in 1...10 {
            let outcome = try render(text, snapshot)
            guard case .incomplete(let reads) = outcome else { return (outcome, round) }
            snapshot = Snapshot(patterns: reads.patterns.union(snapshot.patterns), answer: tree)
        }
        throw TemplateConfigError("did not settle in 10 rounds")
    }

    static func text(_ outcome: RenderOutcome) -> String? {
        guard case .rendered(let outputs, _) = outcome else { return nil }
        return String(decoding: outputs[0], as: UTF8.self)
    }

    static func problems(_ outcome: RenderOutcome) -> [String] {
        guard case .failed(let problems, _) = outcome else { return [] }
        return problems
    }
}
