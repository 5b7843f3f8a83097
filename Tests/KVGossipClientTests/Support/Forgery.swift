import Foundation
import KVGossipCore

/// A cluster made in the test process, and the records a lying agent would serve: genuine ones,
/// tampered ones, ones signed by keys the root never authorized, future-dated ones.
struct Forgery {
    let root = SigningKey.generate()
    /// Holds a grant from the root for `/app/**`.
    let writer = SigningKey.generate()
    let writerGrant: Grant
    /// Holds no grant from this root (only one it issued to itself, through a key of its own).
    let stranger = SigningKey.generate()
    let strangerGrant: Grant

    static var nowMs: UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }

    init() {
        writerGrant = try! Grant(
            cluster: root.publicKey, issuer: root, issuee: writer.publicKey, patterns: [try! Pattern("/app/**")], mayDelegate: false,
            notBefore: 0, expires: nil, nonce: Array(repeating: 1, count: 16))
        // A grant that looks right (this cluster, the right patterns) but is issued by a key the
        // root never authorized: it leads nowhere from the root.
        let impostor = SigningKey.generate()
        strangerGrant = try! Grant(
            cluster: root.publicKey, issuer: impostor, issuee: stranger.publicKey, patterns: [try! Pattern("/**")], mayDelegate: false,
            notBefore: 0, expires: nil, nonce: Array(repeating: 2, count: 16))
    }

    var cluster: PublicKey { root.publicKey }

    /// A genuine record of this cluster by `signer`, dated `atMs` (now by default).
    func record(_ key: String, _ value: String, by signer: SigningKey? = nil, atMs: UInt64 = Forgery.nowMs, pool: [Grant]? = nil) -> [UInt8] {
        let signer = signer ?? writer
        let pool = pool ?? (signer.publicKey == writer.publicKey ? [writerGrant] : [])
        return Record(
            cluster: cluster, key: try! Key(key), kind: .value, value: Array(value.utf8), timestamp: HLC(physicalMs: atMs), signer: signer,
            pool: pool
        ).encoded
    }

    /// A genuine record whose value bytes were then replaced by `forged` (of the same length):
    /// what an agent that changes a value in transit sends. The signature no longer covers it.
    func tampered(_ key: String, _ value: String, to forged: String) -> [UInt8] {
        precondition(value.utf8.count == forged.utf8.count)
        var bytes = record(key, value)
        let original = Array(value.utf8)
        guard let at = (0...(bytes.count - original.count)).last(where: { Array(bytes[$0..<$0 + original.count]) == original }) else {
            preconditionFailure("value not found in the encoding")
        }
        bytes.replaceSubrange(at..<at + original.count, with: Array(forged.utf8))
        return bytes
    }

    /// Signed by `stranger`, with its grant from nowhere in the pool.
    func unauthorized(_ key: String, _ value: String) -> [UInt8] {
        record(key, value, by: stranger, pool: [strangerGrant])
    }

    /// Signed by a root of its own: a whole other cluster, valid in every way but this one's.
    func otherCluster(_ key: String, _ value: String) -> [UInt8] {
        let other = SigningKey.generate()
        return Record(
            cluster: other.publicKey, key: try! Key(key), kind: .value, value: Array(value.utf8), timestamp: HLC(physicalMs: Forgery.nowMs),
            signer: other, pool: []
        ).encoded
    }
}
