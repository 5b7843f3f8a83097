import Foundation
import KVGossipCore
import KVGossipNode
import KVGossipStore

/// Reads the versions a host keeps in bounded pages, for the control API's `history` and for
/// `kvgossip log --data` on a stopped agent's directory (Docs/history.md §Reading the log).
public struct HistoryReader: Sendable {
    public let store: Store
    /// Names for signers this host knows (its root, its own node key, its linked peers).
    public let names: @Sendable () -> [PublicKey: String]
    public let limits: ControlLimits

    public init(store: Store, limits: ControlLimits = .default, names: @escaping @Sendable () -> [PublicKey: String]) {
        self.store = store
        self.limits = limits
        self.names = names
    }

    /// Where the next page starts: below a version of a key, at a key's newest version, or after
    /// a key.
    enum Cursor: Equatable {
        case below(Key, RecordVersion)
        case from(Key)
        case after(String)

        init(parsing text: String) throws {
            let parts = text.split(separator: " ", maxSplits: 4, omittingEmptySubsequences: false)
            if parts.count == 2, parts[0] == "k" {
                self = .after(String(parts[1]))
                return
            }
            if parts.count == 2, parts[0] == "f", let key = try? Key(String(parts[1])) {
                self = .from(key)
                return
            }
            guard parts.count == 5, parts[0] == "v", let ts = UInt64(parts[1]), let kind = UInt8(parts[2]).flatMap(Record.Kind.init(rawValue:)),
                let digest = Hex.decode(String(parts[3])).flatMap(Hash256.init(bytes:)), let key = try? Key(String(parts[4]))
            else { throw ControlError(reason: "bad-request", message: "after: not a history position from a previous answer") }
            self = .below(key, RecordVersion(timestamp: HLC(raw: ts), kind: kind, digest: digest))
        }

        var text: String {
            switch self {
            case .below(let key, let v): "v \(v.timestamp.raw) \(v.kind.rawValue) \(v.digest.hex) \(key.path)"
            case .from(let key): "f \(key.path)"
            case .after(let path): "k \(path)"
            }
        }
    }

    /// One page: versions of `key`, or of the keys matching `pattern`, in key order and newest
    /// first within a key, after `after`; at most `limit` versions and about a page of JSON.
    public func page(key: Key?, pattern: Pattern?, after: String?, limit: Int?, encoding: Bool) throws -> (versions: [VersionInfo], next: String?) {
        if let limit, limit < 1 { throw ControlError(reason: "bad-request", message: "limit must be at least 1") }
        var budget = PageBudget(maxRecords: min(limit ?? limits.pageRecords, limits.pageRecords), maxBytes: limits.pageBytes)
        let names = self.names()
        var out: [VersionInfo] = []
        let cursor = try after.map(Cursor.init(parsing:))

        /// Adds the key's versions (below `below`) until the page is full; the position to resume
        /// from when it filled up first.
        func take(_ key: Key, below: RecordVersion?) throws -> Cursor? {
            let wanted = budget.maxRecords - budget.records + 1
            let versions = try store.versions(of: key, below: below, limit: wanted)
            for (i, v) in versions.enumerated() {
                let info = info(v, names: names, encoding: encoding)
                guard budget.admit(bytes: Self.estimatedBytes(info)) else {
                    return i == 0 ? .from(key) : .below(key, versions[i - 1].record.version)
                }
                out.append(info)
            }
            return nil
        }

        if let key {
            var below: RecordVersion?
            if case .below(let k, let v) = cursor, k == key { below = v }
            let stop = try take(key, below: below)
            return (out, stop?.text)
        }
        guard let pattern else { throw ControlError(reason: "bad-request", message: "history needs a key or a pattern") }
        var afterKey: String?
        switch cursor {
        case .below(let key, let v)?:
            let stop = try take(key, below: v)
            if let stop { return (out, stop.text) }
            afterKey = key.path
        case .from(let key)?:
            let stop = try take(key, below: nil)
            if let stop { return (out, stop.text) }
            afterKey = key.path
        case .after(let path)?:
            afterKey = path
        case nil:
            break
        }
        let scan = try store.keysWithVersions(matching: pattern, after: afterKey, rowLimit: limits.scanRows)
        for key in scan.keys {
            // (Taken before `out` is read: a tuple reads its elements in order.)
            let stop = try take(key, below: nil)
            if let stop { return (out, stop.text) }
        }
        return (out, scan.next.map { Cursor.after($0).text })
    }

    public func info(_ v: StoredVersion, names: [PublicKey: String], encoding: Bool) -> VersionInfo {
        let r = v.record
        let chainLines: [String]
        if r.signer == store.root {
            chainLines = ["root"]
        } else {
            // The chain as it stood when accepted (revocations ignored), each revoked grant marked.
            let chain = store.validator.recheck(r, isRevoked: { _ in false }).chain ?? []
            chainLines = chain.map { $0.chainLine + (store.isRevoked($0.id) ? " REVOKED" : "") }
        }
        let standing = ChainStanding(of: r, validator: store.validator, isRevoked: store.isRevoked)
        return VersionInfo(
            key: r.key.path, kind: r.kind == .value ? "value" : "tombstone", timestamp: r.timestamp.raw, time: r.timestamp.rfc3339,
            signer: r.signer.text, signerName: names[r.signer], digest: r.digest.hex, valueDigest: r.valueHash.hex, size: r.value.count,
            chain: chainLines, standing: standing.label, current: v.isCurrent, encoded: encoding ? Data(r.encoded) : nil)
    }

    /// JSON bytes of one version, from above (as `PageBudget.estimatedBytes` for records).
    static func estimatedBytes(_ info: VersionInfo) -> Int {
        let binary = info.encoded?.count ?? 0
        let escapable = info.key.utf8.count + (info.signerName?.utf8.count ?? 0) + info.chain.reduce(0) { $0 + $1.utf8.count + 3 }
        return (binary + 2) / 3 * 4 + 2 * escapable + info.signer.utf8.count + 2 * 64 + 300
    }
}
