/// The first bytes of every signed encoding. Each names the object kind and format version and ends
/// in NUL, so no tag is a prefix of another and no two kinds of object ever share signed bytes.
enum DomainTag {
    static let grant = Array("kvgossip/grant/v1\u{0}".utf8)
    static let revocation = Array("kvgossip/revocation/v1\u{0}".utf8)
    static let record = Array("kvgossip/record/v1\u{0}".utf8)

    static func read(_ expected: [UInt8], kind: String, from reader: inout ByteReader) throws(Refusal) {
        let tag = try reader.fixed(expected.count, "\(kind) tag")
        guard tag == expected else { throw Refusal(.malformed, "not a \(kind) (unknown tag or version)") }
    }
}

extension ByteReader {
    mutating func publicKey(_ what: String) throws(Refusal) -> PublicKey {
        PublicKey(bytes: try fixed(PublicKey.byteCount, what))!
    }

    mutating func hash(_ what: String) throws(Refusal) -> Hash256 {
        Hash256(bytes: try fixed(Hash256.byteCount, what))!
    }

    mutating func signature(_ what: String) throws(Refusal) -> Signature {
        Signature(bytes: try fixed(Signature.byteCount, what))!
    }
}
