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
    /// Past its expiry now (its signature may still be valid: it just no longer authorizes).
    let expired: Bool
    /// Whether it belongs to the cluster of the root given to check against; nil without one.
    let ofTheGivenRoot: Bool?

    init(_ g: Grant, signatureValid: Bool, root: PublicKey? = nil) {
        expired = g.expires.map { $0 <= nowMs() } ?? false
        ofTheGivenRoot = root.map { $0 == g.cluster }
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
          valid:     from \(notBefore)\(expires.map { " until \($0)" } ?? ", no expiry")\(expired ? " (EXPIRED)" : "")
          cluster:   \(cluster)\(ofTheGivenRoot == false ? " (NOT the cluster of --root)" : "")
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
    /// The root the chain was searched from: `--root`, else the record's own cluster key.
    let verifiedAgainst: String

    /// - Parameter root: the cluster's root as the reader knows it; nil takes the record's word.
    init(_ r: Record, root: PublicKey? = nil) {
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
        let root = root ?? r.cluster
        verifiedAgainst = root.text
        let verdict: AuthorityVerdict = r.cluster == root
            ? RecordValidator(root: root).recheck(r, isRevoked: { _ in false })
            : .refused(Refusal(.noAuthority, "the record is for cluster \(r.cluster.fingerprint), not \(root.fingerprint)"), revokedGrants: [])
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

/// A block that does not decode, named by its place in the file.
struct UnreadableSummary: Encodable {
    let kind = "unreadable"
    let block: Int
    let blockKind: String
    let problem: String
}

enum InspectedItem: Encodable {
    case key(KeySummary)
    case grant(GrantSummary)
    case revocation(RevocationSummary)
    case record(RecordSummary)
    case unreadable(UnreadableSummary)

    /// - Parameter root: records are checked against it (nil: against their own cluster key).
    init(_ block: Armor.Block, number: Int = 1, root: PublicKey? = nil) {
        do {
            switch block.kind {
            case .grant:
                let g = try Grant(decoding: block.bytes)
                self = .grant(GrantSummary(g, signatureValid: g.signatureIsValid, root: root))
            case .revocation:
                self = .revocation(RevocationSummary(try Revocation(decoding: block.bytes)))
            case .record:
                self = .record(RecordSummary(try Record(decoding: block.bytes), root: root))
            }
        } catch {
            self = .unreadable(UnreadableSummary(block: number, blockKind: block.kind.rawValue.lowercased(), problem: error.detail))
        }
    }

    var verifies: Bool {
        switch self {
        case .key: true
        case .grant(let g): g.signatureValid && g.ofTheGivenRoot != false
        case .revocation(let r): r.signatureValid
        case .record(let r): r.signatureValid && r.chain != nil
        case .unreadable: false
        }
    }

    /// What fails, naming the object, for standard error.
    var failure: String? {
        guard !verifies else { return nil }
        switch self {
        case .key: return nil
        case .grant(let g):
            return g.signatureValid ? "grant \(g.id): for cluster \(g.cluster), not the one of --root" : "grant \(g.id): signature does not verify"
        case .revocation(let r): return "revocation of grant \(r.grantID): \(r.problem ?? "does not verify")"
        case .record(let r):
            let name = "record \(r.key) version \(r.digest.prefix(16)) (\(r.timestamp))"
            return r.signatureValid ? "\(name): no valid chain (\(r.refusal ?? ""))" : "\(name): signature does not verify (the record was altered)"
        case .unreadable(let u): return "\(u.blockKind) block \(u.block): does not decode (\(u.problem))"
        }
    }

    var human: String {
        switch self {
        case .key(let k): "\(k.kind) \(k.publicKey)\n  fingerprint: \(k.fingerprint)"
        case .grant(let g): g.human
        case .revocation(let r): r.human
        case .record(let r): r.human
        case .unreadable(let u): "\(u.blockKind) block \(u.block): UNREADABLE (\(u.problem))"
        }
    }

    func encode(to encoder: Encoder) throws {
        switch self {
        case .key(let k): try k.encode(to: encoder)
        case .grant(let g): try g.encode(to: encoder)
        case .revocation(let r): try r.encode(to: encoder)
        case .record(let r): try r.encode(to: encoder)
        case .unreadable(let u): try u.encode(to: encoder)
        }
    }
}
