import Foundation
import KVGossipControl
import KVGossipCore

/// The client's own check of a record an agent sent (Docs/client.md §Verification).
///
/// The agent is not believed about values. A record is delivered only when its encoding decodes
/// and passes the check a node applies to a record from a peer (`RecordValidator`: cluster, sizes,
/// clock skew, signature, a chain of grants from the root), judged by this client's clock against
/// the root the client trusts, and when it is a record of a key that was asked for. Everything the
/// client shows of it (value, kind, signer, time, digest, chain) is read from the verified bytes,
/// never from the agent's description of them; only the key's dirtiness, an opinion nobody signs,
/// is taken from the agent as said.
struct RecordCheck: Sendable {
    let validator: RecordValidator
    /// Milliseconds since the Unix epoch, by which the skew bound is judged.
    let clock: @Sendable () -> UInt64

    init(root: PublicKey, limits: Limits, clock: @escaping @Sendable () -> UInt64 = RecordCheck.systemClock) {
        validator = RecordValidator(root: root, limits: limits)
        self.clock = clock
    }

    static let systemClock: @Sendable () -> UInt64 = { UInt64(Date().timeIntervalSince1970 * 1000) }

    var root: PublicKey { validator.root }

    /// The record `info` carries, verified, when it is of a key `wanted` accepts.
    ///
    /// Revocations are not consulted: the control API hands the client none, and one the agent
    /// withheld could not be told from one that does not exist. An agent hides a revoked record by
    /// not sending it; a lying one can always show an old, once valid record (Docs/security.md
    /// §What the client library trusts).
    /// - Throws: `unverified-record`, naming the key and the failed check.
    func verify(_ info: RecordInfo, wanted: (Key) -> Bool) throws(KVClientError) -> KeyRecord {
        func failure(_ check: KVClientError.Reason, _ why: String) -> KVClientError {
            KVClientError(.unverifiedRecord, "the agent's record for \(info.key) failed verification: \(check): \(why)", key: info.key, check: check)
        }
        guard let encoded = info.encoded else {
            throw failure(.malformed, "it came without its encoding, so its signature cannot be checked")
        }
        let record: Record
        do { record = try Record(decoding: [UInt8](encoded), limits: validator.limits) } catch {
            throw failure(KVClientError.Reason(rawValue: error.reason.rawValue), error.detail)
        }
        guard record.key.path == info.key, wanted(record.key) else {
            throw failure(.wrongKey, "the encoding is a record of \(record.key), which was not asked for")
        }
        switch validator.validate(record, nowMs: clock(), isRevoked: { _ in false }) {
        case .refused(let refusal, _):
            throw failure(KVClientError.Reason(rawValue: refusal.reason.rawValue), refusal.detail)
        case .authorized(let chain):
            return KeyRecord(verified: record, chain: chain)
        }
    }

    /// A record as delivered to the client's caller: verified, or why not, with the agent's
    /// dirtiness of its key.
    func check(_ info: RecordInfo, wanted: (Key) -> Bool) -> CheckedRecord {
        let result: Result<KeyRecord, KVClientError>
        do { result = .success(try verify(info, wanted: wanted)) } catch { result = .failure(error) }
        return CheckedRecord(key: info.key, result: result, agentState: info.state)
    }

    /// ``check(_:wanted:)`` for every record of an answer, in order. A large answer is split in
    /// as many parts as there are cores, checked at once: verifying signatures is most of what
    /// reading a large answer costs the client.
    func check(_ infos: [RecordInfo], wanted: @escaping @Sendable (Key) -> Bool) async -> [CheckedRecord] {
        // Foundation reads the core count from the cgroup files on every call: only for large answers.
        let parts = infos.count >= 64 ? min(ProcessInfo.processInfo.activeProcessorCount, 8) : 1
        guard parts > 1 else { return infos.map { check($0, wanted: wanted) } }
        let size = (infos.count + parts - 1) / parts
        return await withTaskGroup(of: (index: Int, records: [CheckedRecord]).self) { group in
            for (index, start) in stride(from: 0, to: infos.count, by: size).enumerated() {
                let part = infos[start..<min(infos.count, start + size)]
                group.addTask { (index, part.map { check($0, wanted: wanted) }) }
            }
            var done = [[CheckedRecord]](repeating: [], count: parts)
            for await part in group { done[part.index] = part.records }
            return done.flatMap { $0 }
        }
    }
}
