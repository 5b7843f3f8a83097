import Foundation
import KVGossipCore

/// Human and JSON views of decoded objects, shared by `inspect`, `grant` and the agent commands.
struct KeySummary: Encodable {
    let kind: String
    let publicKey: String
    let fingerprint: String
}

struct GrantSummary: Encodable {
    let kind = "grant"
    let id: String
    let cluster: String
    let issuer: String
    let issuee: String
    let patterns: [String]
    let mayDelegate: Bool
    let notBefore: String
    let expires: String?
    let signatureValid: Bool

    init(_ g: Grant, signatureValid: Bool) {
        id = g.id.hex
        cluster = g.cluster.text
        issuer = g.issuer.text
        issuee = g.issuee.text
        patterns = g.patterns.map(\.text)
        mayDelegate = g.mayDelegate
        notBefore = HLC(physicalMs: g.notBefore).rfc3339
        expires = g.expires.map { HLC(physicalMs: $0).rfc3339 }
        self.signatureValid = signatureValid
    }

    var human: String {
        """
        grant \(id)
          issuer:    \(issuer)
          issuee:    \(issuee)
          patterns:  \(patterns.joined(separator: " "))
          delegate:  \(mayDelegate ? "yes" : "no")
          valid:     from \(notBefore)\(expires.map { " until \($0)" } ?? ", no expiry")
          cluster:   \(cluster)
          signature: \(signatureValid ? "valid" : "INVALID")
        """
    }
}

struct RevocationSummary: Encodable {
    let kind = "revocation"
    let grantID: String
    let signer: String
    let revokedAt: String
    let cluster: String
    let signatureValid: Bool
    let problem: String?

    init(_ r: Revocation) {
        grantID = r.grantID.hex
        signer = r.signer.text
        revokedAt = HLC(physicalMs: r.revokedAt).rfc3339
        cluster = r.cluster.text
        var problem: String?
        do { try r.verify(using: ChainSearch(root: r.cluster, cache: GrantVerificationCache())) } catch { problem = error.description }
        self.problem = problem
        signatureValid = problem == nil
    }

    var human: String {
        """
        revocation of grant \(grantID)
          signer:    \(signer)
          revoked:   \(revokedAt)
          cluster:   \(cluster)
          signature: \(signatureValid ? "valid" : "INVALID (\(problem ?? ""))")
        """
    }
}

struct RecordSummary: Encodable {
    let kind = "record"
    let key: String
    let recordKind: String
    let valueBytes: Int
    let value: String?
    let timestamp: String
    let hlc: UInt64
    let signer: String
    let digest: String
    let cluster: String
    let pool: [String]
    let signatureValid: Bool
    let chain: [String]?
    let refusal: String?

    init(_ r: Record) {
        key = r.key.path
        recordKind = r.kind == .value ? "value" : "tombstone"
        valueBytes = r.value.count
        value = String(validating: r.value, as: UTF8.self)
        timestamp = r.timestamp.rfc3339
        hlc = r.timestamp.raw
        signer = r.signer.text
        digest = r.digest.hex
        cluster = r.cluster.text
        pool = r.pool.map(\.id.hex)
        signatureValid = r.signatureIsValid
        let verdict = RecordValidator(root: r.cluster).recheck(r, isRevoked: { _ in false })
        switch verdict {
        case .authorized(let chain):
            self.chain = chain.map { "\($0.issuer.fingerprint) -> \($0.issuee.fingerprint) \($0.patterns.map(\.text))" }
            refusal = nil
        case .refused(let refusal, _):
            self.chain = nil
            self.refusal = refusal.description
        }
    }

    var human: String {
        var lines = [
            "record \(key) (\(recordKind), \(valueBytes) bytes)",
            "  time:      \(timestamp) (hlc \(hlc))",
            "  signer:    \(signer)",
            "  digest:    \(digest)",
            "  cluster:   \(cluster)",
            "  signature: \(signatureValid ? "valid" : "INVALID")",
        ]
        if let chain {
            lines.append("  chain:     \(chain.isEmpty ? "signed by the root" : chain.joined(separator: "\n             "))")
        } else {
            lines.append("  chain:     NONE (\(refusal ?? ""))")
        }
        return lines.joined(separator: "\n")
    }
}

enum InspectedItem: Encodable {
    case key(KeySummary)
    case grant(GrantSummary)
    case revocation(RevocationSummary)
    case record(RecordSummary)

    init(_ block: Armor.Block) throws {
        switch block.kind {
        case .grant:
            let g = try Grant(decoding: block.bytes)
            self = .grant(GrantSummary(g, signatureValid: g.signatureIsValid))
        case .revocation:
            self = .revocation(RevocationSummary(try Revocation(decoding: block.bytes)))
        case .record:
            self = .record(RecordSummary(try Record(decoding: block.bytes)))
        }
    }

    var verifies: Bool {
        switch self {
        case .key: true
        case .grant(let g): g.signatureValid
        case .revocation(let r): r.signatureValid
        case .record(let r): r.signatureValid && r.chain != nil
        }
    }

    var human: String {
        switch self {
        case .key(let k): "\(k.kind) \(k.publicKey)\n  fingerprint: \(k.fingerprint)"
        case .grant(let g): g.human
        case .revocation(let r): r.human
        case .record(let r): r.human
        }
    }

    func encode(to encoder: Encoder) throws {
        switch self {
        case .key(let k): try k.encode(to: encoder)
        case .grant(let g): try g.encode(to: encoder)
        case .revocation(let r): try r.encode(to: encoder)
        case .record(let r): try r.encode(to: encoder)
        }
    }
}
