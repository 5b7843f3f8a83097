import Foundation
import KVGossipControl
import KVGossipCore

/// One line of `kvgossip log`: a version as the agent described it, with the record itself when
/// values, diffs or an export were asked for, and what it brings back.
struct LogEntry {
    let info: VersionInfo
    let record: KVGossipCore.Record?
    /// The earlier version (same key) whose value this one brings back, if any.
    let restores: VersionInfo?
    /// The next older version of the same key, for diffs.
    let previous: LogEntry.Previous?

    struct Previous {
        let info: VersionInfo
        let record: KVGossipCore.Record?
    }

    /// Entries for versions listed key by key, newest first within each key. Records are decoded
    /// and checked against what the agent said of them.
    static func build(_ versions: [VersionInfo], withRecords: Bool) throws -> [LogEntry] {
        let records: [KVGossipCore.Record?] = try versions.map { v in
            guard withRecords else { return nil }
            guard let bytes = v.encoded else { throw CLIError("the answer carries no record for \(v.key) \(v.digest.prefix(16))") }
            let record = try KVGossipCore.Record(decoding: [UInt8](bytes))
            guard record.digest.hex == v.digest, record.key.path == v.key else {
                throw CLIError("the record sent for \(v.key) \(v.digest.prefix(16)) is another one")
            }
            return record
        }
        var out: [LogEntry] = []
        var start = 0
        while start < versions.count {
            var end = start
            while end < versions.count, versions[end].key == versions[start].key { end += 1 }
            let group = Array(start..<end)
            let restored = HistoryRule.restoredVersions(newestFirst: group.map { i in
                (kind: versions[i].kind == "value" ? Record.Kind.value : .tombstone, valueHash: Hash256(bytes: Hex.decode(versions[i].valueDigest) ?? []) ?? .zero)
            })
            for (n, i) in group.enumerated() {
                let older = n + 1 < group.count ? group[n + 1] : nil
                out.append(LogEntry(
                    info: versions[i], record: records[i], restores: restored[n].map { versions[group[$0]] },
                    previous: older.map { Previous(info: versions[$0], record: records[$0]) }))
            }
            start = end
        }
        return out
    }

    var signerText: String {
        let fingerprint = (try? PublicKey(text: info.signer).fingerprint) ?? info.signer
        return info.signerName.map { "\($0) (\(fingerprint))" } ?? fingerprint
    }

    var standingText: String {
        switch info.standing {
        case "valid": "valid"
        case "revoked": "REVOKED (a grant in its chain was revoked after it was written)"
        default: "NO VALID CHAIN (\(info.standing))"
        }
    }

    func human(values: Bool, patch: Bool) -> String {
        var lines = [
            "version \(info.digest.prefix(16))\(info.current ? " (current)" : "")",
            "  time:    \(info.time) (hlc \(info.timestamp))",
            "  signer:  \(signerText)",
        ]
        lines.append("  chain:   " + info.chain.joined(separator: "\n           "))
        lines.append(info.kind == "value"
            ? "  value:   \(info.size) bytes, digest \(info.valueDigest.prefix(16))"
            : "  value:   none (deleted: a tombstone)")
        lines.append("  status:  \(standingText)")
        if let restores { lines.append("  reverts: brings back the value of \(restores.digest.prefix(16)) (\(restores.time))") }
        if values, let record, record.kind == .value {
            lines.append("  ---")
            lines.append(Data(record.value).displayText.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n"))
        }
        if patch, let text = diffText { lines.append(text) }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `-p`: this version against the one before it (nothing for a key's oldest version).
    var diffLines: [String]? {
        guard let previous, let record, let older = previous.record else { return nil }
        switch LineDiff.compare(old: older.value, new: record.value) {
        case .binary: return ["binary values differ"]
        case .tooLarge: return ["values differ (too many lines to compare)"]
        case .lines(let lines):
            return lines.map { line in
                switch line {
                case .same(let t): " " + t
                case .removed(let t): "-" + t
                case .added(let t): "+" + t
                }
            }
        }
    }

    private var diffText: String? {
        guard let previous, let lines = diffLines else { return nil }
        let header = ["  --- \(previous.info.digest.prefix(16)) (\(previous.info.time))", "  +++ \(info.digest.prefix(16)) (\(info.time))"]
        return (header + lines.map { "  " + $0 }).joined(separator: "\n")
    }

    /// The version's fields, and beside them what `log` adds.
    struct JSON: Encodable {
        let version: VersionInfo
        let restores: String?
        let value: String?
        let valueBase64: Data?
        let diff: [String]?

        enum Extra: String, CodingKey { case restores, value, valueBase64, diff }

        func encode(to encoder: Encoder) throws {
            try version.encode(to: encoder)
            var c = encoder.container(keyedBy: Extra.self)
            try c.encodeIfPresent(restores, forKey: .restores)
            try c.encodeIfPresent(value, forKey: .value)
            try c.encodeIfPresent(valueBase64, forKey: .valueBase64)
            try c.encodeIfPresent(diff, forKey: .diff)
        }
    }

    func json(values: Bool, patch: Bool) -> JSON {
        var version = info
        version.encoded = nil
        let value = values ? record.flatMap { $0.kind == .value ? $0.value : nil } : nil
        return JSON(
            version: version, restores: restores?.digest, value: value.flatMap { String(validating: $0, as: UTF8.self) },
            valueBase64: value.flatMap { String(validating: $0, as: UTF8.self) == nil ? Data($0) : nil }, diff: patch ? diffLines : nil)
    }
}

/// `log --export`: the versions as armored signed records, with a note on how to verify them.
enum LogExport {
    /// Refuses to replace an existing file without `force`, as `keygen` and `grant` do (it could be a key).
    static func write(_ records: [Record], target: String, to path: String, force: Bool) throws {
        var text = """
            # kvgossip log export of \(target): \(records.count) signed records, newest first per key.
            # Each record carries its own chain of grants; verify every signature and chain offline with
            #   kvgossip inspect --root ROOT-PUBLIC-KEY \(URL(fileURLWithPath: path).lastPathComponent)

            """
        for record in records { text += Armor.render(.record, record.encoded) }
        try Files.create(path, contents: text, mode: 0o644, force: force)
    }
}
