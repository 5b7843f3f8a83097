@testable import KVGossipCore

/// Deterministic keys and builders so every test reads as the scenario it checks.
enum Fixture {
    static func key(_ n: UInt8) -> SigningKey { SigningKey(seed: [UInt8](repeating: n, count: 32))! }

    static let root = key(1)
    static let alice = key(2)
    static let bob = key(3)
    static let carol = key(4)
    static let mallory = key(9)
    static var cluster: PublicKey { root.publicKey }

    /// 2026-11-27T00:00:00Z in ms.
    static let now: UInt64 = 1_795_737_600_000

    static func grant(
        _ issuer: SigningKey, to issuee: SigningKey, _ patterns: [String], delegate: Bool = false,
        notBefore: UInt64 = now - 3_600_000, expires: UInt64? = nil, nonce: UInt8 = 0, cluster: PublicKey = cluster
    ) -> Grant {
        try! Grant(
            cluster: cluster, issuer: issuer, issuee: issuee.publicKey, patterns: patterns.map { try! Pattern($0) },
            mayDelegate: delegate, notBefore: notBefore, expires: expires, nonce: [UInt8](repeating: nonce, count: 16))
    }

    static func record(
        _ key: String, _ value: String = "v", by signer: SigningKey, pool: [Grant] = [], at ms: UInt64 = now,
        counter: UInt16 = 0, kind: Record.Kind = .value, cluster: PublicKey = cluster
    ) -> Record {
        Record(
            cluster: cluster, key: try! Key(key), kind: kind, value: kind == .value ? Array(value.utf8) : [],
            timestamp: HLC(physicalMs: ms, counter: counter), signer: signer, pool: pool)
    }

    static func validator() -> RecordValidator { RecordValidator(root: cluster) }
}
