import Synchronization
@testable import KVGossipCore

/// An in-memory node for testing the sync session logic without sockets or SQLite: records and
/// revocations in dictionaries, summaries in `InMemoryMerkleBackend`, the same validator and
/// ordering rules as the store.
final class MemoryNode: SyncLocalState, @unchecked Sendable {
    let cluster: PublicKey
    let validator: RecordValidator
    let now: UInt64
    private let lock = Mutex(())
    private(set) var records: [Hash256: Record] = [:]
    private(set) var revocationsByGrant: [Hash256: Revocation] = [:]
    /// How each record handed to `apply(records:from:arrival:)` came, by key path.
    private(set) var arrivals: [String: RecordArrival] = [:]
    private var summaries: [SummarySpace: InMemoryMerkleBackend] = [.records: InMemoryMerkleBackend(), .revocations: InMemoryMerkleBackend()]
    private var roots: [SummarySpace: Hash256] = [.records: .zero, .revocations: .zero]

    init(root: PublicKey, now: UInt64 = Fixture.now) {
        cluster = root
        validator = RecordValidator(root: root)
        self.now = now
    }

    func treeHash() throws -> Hash256 {
        lock.withLock { _ in SummaryEntries.treeHash(records: roots[.records]!, revocations: roots[.revocations]!) }
    }

    func view(_ query: ViewQuery) throws -> MerkleNodeView {
        try lock.withLock { _ in
            var backend = summaries[query.space]!
            return query.entries
                ? try MerkleReader.entriesView(under: query.prefix, in: &backend)
                : try MerkleReader.view(at: query.prefix, in: &backend)
        }
    }

    func entryCount(_ space: SummarySpace, under prefix: NibblePath) throws -> Int {
        lock.withLock { _ in
            let backend = summaries[space]!
            if let node = backend.internalNode(at: prefix) { return node.count }
            return backend.entries(under: prefix).count
        }
    }

    /// Records read here, one by one, as a store would load them (`recordsLoaded`).
    private(set) var recordsLoaded = 0

    func records(at ids: [Hash256], maxBytes: Int, firstAnySize: Bool) throws -> (records: [Record], consumed: Int) {
        lock.withLock { _ in
            var found: [Record] = []
            var bytes = 0
            for (i, id) in ids.enumerated() {
                guard let record = records[id] else { continue }
                if !(found.isEmpty && firstAnySize), bytes + record.encoded.count > maxBytes { return (found, i) }
                recordsLoaded += 1
                found.append(record)
                bytes += record.encoded.count
            }
            return (found, ids.count)
        }
    }

    func revocations(for grantIDs: [Hash256]) throws -> [Revocation] {
        lock.withLock { _ in grantIDs.compactMap { revocationsByGrant[$0] } }
    }

    func storedDigests(of keys: [Key]) throws -> [Hash256?] {
        lock.withLock { _ in keys.map { records[SummaryEntries.keyHash($0)]?.digest } }
    }

    func isRevoked(_ id: Hash256) -> Bool { revocationsByGrant[id] != nil }

    func apply(records incoming: [Record], from peer: String, arrival: RecordArrival) throws -> [PushResult] {
        lock.withLock { _ in for r in incoming { arrivals[r.key.path] = arrival } }
        return try incoming.map { try apply($0) }
    }

    @discardableResult
    func apply(_ record: Record) throws -> PushResult {
        try lock.withLock { _ in
            switch validator.validate(record, nowMs: now, isRevoked: isRevoked) {
            case .refused(let refusal, let ids):
                return PushResult(code: .refused, reason: refusal.reason, detail: refusal.detail, revocations: ids.compactMap { revocationsByGrant[$0] })
            case .authorized:
                let id = SummaryEntries.keyHash(record.key)
                if let current = records[id] {
                    if current.digest == record.digest { return PushResult(code: .duplicate) }
                    if record.version < current.version { return PushResult(code: .superseded) }
                }
                try storeUnchecked(record)
                return PushResult(code: .accepted)
            }
        }
    }

    /// Puts a record in without any check: for building a peer that holds junk.
    func storeUnchecked(_ record: Record) throws {
        let entry = SummaryEntries.entry(for: record)
        let delta = summaries[.records]!.upsert(entry)
        records[entry.id] = record
        roots[.records] = try MerkleTrie.apply([MerkleChange(id: entry.id, countDelta: delta)], to: &summaries[.records]!)
    }

    func apply(revocations incoming: [Revocation], from peer: String) throws -> Int {
        try incoming.reduce(0) { $0 + (try apply($1) ? 0 : 1) }
    }

    /// False when refused (a duplicate is not a refusal).
    @discardableResult
    func apply(_ revocation: Revocation) throws -> Bool {
        try lock.withLock { _ in
            guard (try? revocation.verify(using: ChainSearch(root: cluster, cache: GrantVerificationCache()))) != nil else { return false }
            guard revocationsByGrant[revocation.grantID] == nil else { return true }
            revocationsByGrant[revocation.grantID] = revocation
            let entry = SummaryEntries.entry(for: revocation)
            let delta = summaries[.revocations]!.upsert(entry)
            roots[.revocations] = try MerkleTrie.apply([MerkleChange(id: entry.id, countDelta: delta)], to: &summaries[.revocations]!)
            for (id, record) in records where record.pool.contains(where: { $0.id == revocation.grantID }) {
                if case .unset = RevocationCascade.apply(to: record, validator: validator, isRevoked: isRevoked) {
                    records[id] = nil
                    let delta = summaries[.records]!.remove(id)
                    roots[.records] = try MerkleTrie.apply([MerkleChange(id: id, countDelta: delta)], to: &summaries[.records]!)
                }
            }
            return true
        }
    }

    private(set) var pendingFetch: Set<Hash256> = []
    private(set) var everPendingFetch: Set<Hash256> = []

    func willExchange(records ids: [Hash256], with peer: String) {
        lock.withLock { _ in
            pendingFetch.formUnion(ids)
            everPendingFetch.formUnion(ids)
        }
    }

    func didExchange(records ids: [Hash256], with peer: String) {
        lock.withLock { _ in pendingFetch.subtract(ids) }
    }

    func value(_ key: String) -> String? {
        records[SummaryEntries.keyHash(try! Key(key))].map { String(decoding: $0.value, as: UTF8.self) }
    }
}

/// Runs a whole session between two in-memory nodes, passing every message through the codec.
struct SessionRun {
    var messages = 0
    var bytes = 0
    var roundTrips = 0
    var initiatorReport = SyncReport()
    var responderReport = SyncReport()

    static func run(_ a: MemoryNode, _ b: MemoryNode, limits: SyncLimits = .default) throws -> SessionRun {
        var run = SessionRun()
        var initiator = SyncInitiator(state: a, peer: "B", limits: limits)
        var responder = SyncResponder(state: b, peer: "A", limits: limits)
        var toResponder = try initiator.start()
        var guardCount = 0
        while !initiator.isFinished {
            guardCount += 1
            precondition(guardCount < 10_000, "session does not terminate")
            var toInitiator: [SyncMessage] = []
            for m in toResponder {
                let wire = SyncMessageCodec.encode(m)
                run.bytes += wire.count + 4
                run.messages += 1
                toInitiator += try responder.receive(try SyncMessageCodec.decode(wire))
            }
            run.roundTrips += 1
            toResponder = []
            for m in toInitiator {
                let wire = SyncMessageCodec.encode(m)
                run.bytes += wire.count + 4
                run.messages += 1
                toResponder += try initiator.receive(try SyncMessageCodec.decode(wire))
            }
            if toResponder.isEmpty && !initiator.isFinished && toInitiator.isEmpty {
                Issue.record("session stalled")
                break
            }
        }
        run.initiatorReport = initiator.report
        run.responderReport = responder.report
        return run
    }
}

import Testing
