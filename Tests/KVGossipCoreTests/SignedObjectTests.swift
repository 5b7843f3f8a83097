import Testing
@testable import KVGossipCore
import KVGossipTestSupport

@Suite struct SignedObjectTests {
    @Test func grantRoundTrips() throws {
        let g = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**", "/b/?"], delegate: true, expires: Fixture.now + 1000)
        let back = try Grant(decoding: g.encoded)
        #expect(back == g)
        #expect(back.id == g.id)
        #expect(back.patterns.map(\.text) == ["/app/**", "/b/?"])
        #expect(back.mayDelegate && back.expires == Fixture.now + 1000)
        #expect(back.signatureIsValid)
    }

    @Test func recordRoundTripsWithPool() throws {
        let g = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**"])
        let r = Fixture.record("/app/db/url", "postgres://db2", by: Fixture.alice, pool: [g])
        let back = try Record(decoding: r.encoded)
        #expect(back == r)
        #expect(back.pool == [g])
        #expect(back.signatureIsValid)
        #expect(String(decoding: back.value, as: UTF8.self) == "postgres://db2")
    }

    /// Only a record signed in this process skips the second verification; every decoded copy,
    /// the store's included, is verified in full, and a forged one still fails.
    @Test func onlyARecordSignedHereSkipsVerification() throws {
        let g = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**"])
        let r = Fixture.record("/app/x", "v", by: Fixture.alice, pool: [g])
        #expect(r.signedHere && r.signatureIsValid)
        #expect(r.withPool([]).signedHere)
        let back = try Record(decoding: r.encoded)
        #expect(!back.signedHere && back.signatureIsValid && back == r)
        var bytes = r.encoded
        bytes[r.signedBytes.count] ^= 1  // first signature byte
        let forged = try Record(decoding: bytes)
        #expect(!forged.signedHere && !forged.signatureIsValid)
    }

    /// A copy whose pool grant carries other signature bytes is equal (`==`: same digest, value,
    /// signature, grant ids) but not identical: the bytes differ, and so may its verdict.
    @Test func identicalMeansTheSameBytes() throws {
        let g = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**"])
        let r = Fixture.record("/app/x", "v", by: Fixture.alice, pool: [g])
        var bytes = r.encoded
        bytes[bytes.count - 1] ^= 1  // the last byte of the last grant's signature
        let forged = try Record(decoding: bytes)
        #expect(forged == r)
        #expect(!forged.isIdentical(to: r))
        #expect(try Record(decoding: r.encoded).isIdentical(to: r))
    }

    @Test func emptyValueIsDistinctFromTombstone() throws {
        let empty = Fixture.record("/k", "", by: Fixture.root)
        let tomb = Fixture.record("/k", by: Fixture.root, kind: .tombstone)
        #expect(empty.digest != tomb.digest)
        #expect(try Record(decoding: empty.encoded).kind == .value)
        #expect(try Record(decoding: tomb.encoded).kind == .tombstone)
    }

    @Test func revocationRoundTripsAndVerifies() throws {
        let search = Fixture.validator().search
        let alicesOwn = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**"], delegate: true)
        let g = Fixture.grant(Fixture.alice, to: Fixture.bob, ["/app/**"])
        let byIssuer = Revocation(cluster: Fixture.cluster, grant: g, revokedAt: Fixture.now, signer: Fixture.alice, proof: [alicesOwn])
        let back = try Revocation(decoding: byIssuer.encoded)
        #expect(back == byIssuer && back.grant == g && back.proof == [alicesOwn])
        try back.verify(using: search)

        let byRoot = Revocation(cluster: Fixture.cluster, grantID: g.id, revokedAt: Fixture.now, signer: Fixture.root)
        #expect(try Revocation(decoding: byRoot.encoded).proof.isEmpty)
        try Revocation(decoding: byRoot.encoded).verify(using: search)

        let byStranger = Revocation(cluster: Fixture.cluster, grant: g, revokedAt: Fixture.now, signer: Fixture.mallory, proof: [alicesOwn])
        #expect(throws: Refusal.self) { try byStranger.verify(using: search) }
        let strangerWithoutGrant = Revocation(cluster: Fixture.cluster, grantID: g.id, revokedAt: Fixture.now, signer: Fixture.alice)
        #expect(throws: Refusal.self) { try strangerWithoutGrant.verify(using: search) }
    }

    /// Anyone can make a key, a grant from it and the grant's revocation; without a chain of
    /// delegating grants from the root to the revoker, the revocation is refused.
    @Test func aRevocationNeedsTheRevokersDelegatingChain() throws {
        let search = Fixture.validator().search
        let junk = Fixture.grant(Fixture.mallory, to: Fixture.bob, ["/**"])
        let noProof = Revocation(cluster: Fixture.cluster, grant: junk, revokedAt: Fixture.now, signer: Fixture.mallory)
        #expect { try noProof.verify(using: search) } throws: { ($0 as? Refusal)?.reason == .noAuthority }

        // A grant without delegation does not let its holder issue (or revoke) grants.
        let writeOnly = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**"])
        let g = Fixture.grant(Fixture.alice, to: Fixture.bob, ["/app/x"])
        let notDelegate = Revocation(cluster: Fixture.cluster, grant: g, revokedAt: Fixture.now, signer: Fixture.alice, proof: [writeOnly])
        #expect { try notDelegate.verify(using: search) } throws: { ($0 as? Refusal)?.reason == .noAuthority }

        // The chain must be valid when the revocation was made.
        let expired = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**"], delegate: true, expires: Fixture.now - 1)
        let late = Revocation(cluster: Fixture.cluster, grant: g, revokedAt: Fixture.now, signer: Fixture.alice, proof: [expired])
        #expect { try late.verify(using: search) } throws: { ($0 as? Refusal)?.reason == .noAuthority }

        // Two delegating links, given in any order.
        let toAlice = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**"], delegate: true)
        let toCarol = Fixture.grant(Fixture.alice, to: Fixture.carol, ["/app/team/**"], delegate: true)
        let fromCarol = Fixture.grant(Fixture.carol, to: Fixture.bob, ["/app/team/x"])
        try Revocation(cluster: Fixture.cluster, grant: fromCarol, revokedAt: Fixture.now, signer: Fixture.carol, proof: [toCarol, toAlice])
            .verify(using: search)

        // A forged proof link (right fields, wrong signature) proves nothing, even to a node that
        // verified the genuine grant before.
        let forged = try Grant(decoding: Array(toAlice.signedBytes) + [UInt8](repeating: 7, count: 64))
        let withForgery = Revocation(cluster: Fixture.cluster, grant: g, revokedAt: Fixture.now, signer: Fixture.alice, proof: [forged])
        #expect { try withForgery.verify(using: search) } throws: { ($0 as? Refusal)?.reason == .noAuthority }
    }

    /// A signature made for one key or time must not be accepted for another
    /// (Docs/contract.md §Signed objects).
    @Test func relabelledRecordFailsVerification() throws {
        let r = Fixture.record("/app/a", "secret", by: Fixture.root)
        var bytes = r.encoded
        // Swap the key /app/a for /app/b (same length) inside the signed bytes.
        let keyStart = DomainTag.record.count + 32 + 2
        #expect(bytes[keyStart + 5] == UInt8(ascii: "a"))
        bytes[keyStart + 5] = UInt8(ascii: "b")
        let relabelled = try Record(decoding: bytes)
        #expect(relabelled.key.path == "/app/b")
        #expect(!relabelled.signatureIsValid)

        // Move the timestamp forward by one.
        var later = r.encoded
        let tsEnd = r.signedBytes.count - 32
        later[tsEnd - 1] &+= 1
        let retimed = try Record(decoding: later)
        #expect(retimed.timestamp.raw == r.timestamp.raw + 1)
        #expect(!retimed.signatureIsValid)

        // Swap in another value: the value hash no longer matches.
        let other = Fixture.record("/app/a", "public", by: Fixture.root)
        var swapped = r.encoded.prefix(r.signedBytes.count + 64)
        var w = ByteWriter()
        w.long(other.value)
        w.u8(0)
        swapped.append(contentsOf: w.bytes)
        #expect(!(try Record(decoding: Array(swapped))).signatureIsValid)
    }

    @Test func differentKindsNeverShareSignedBytes() {
        #expect(!DomainTag.grant.starts(with: DomainTag.record))
        #expect(!DomainTag.record.starts(with: DomainTag.revocation))
        #expect(Set([DomainTag.grant, DomainTag.record, DomainTag.revocation]).count == 3)
        let g = Fixture.grant(Fixture.root, to: Fixture.alice, ["/a"])
        #expect(throws: Refusal.self) { try Record(decoding: g.encoded) }
        #expect(throws: Refusal.self) { try Revocation(decoding: g.encoded) }
    }

    @Test func trailingBytesAndOversizeFieldsAreRefused() throws {
        let g = Fixture.grant(Fixture.root, to: Fixture.alice, ["/a"])
        #expect(throws: Refusal.self) { try Grant(decoding: g.encoded + [0]) }
        let big = Record(
            cluster: Fixture.cluster, key: try Key("/big"), kind: .value, value: [UInt8](repeating: 7, count: 2000),
            timestamp: HLC(physicalMs: Fixture.now), signer: Fixture.root, pool: [])
        var small = Limits()
        small.maxValueBytes = 1000
        do {
            _ = try Record(decoding: big.encoded, limits: small)
            Issue.record("oversize value accepted")
        } catch {
            #expect(error.reason == .tooLarge)
        }
    }

    @Test func grantShapeIsChecked() {
        #expect(throws: Refusal.self) {
            try Grant(cluster: Fixture.cluster, issuer: Fixture.alice, issuee: Fixture.alice.publicKey, patterns: [try! Pattern("/a")],
                      mayDelegate: false, notBefore: 0, expires: nil, nonce: [UInt8](repeating: 0, count: 16))
        }
        // No pattern: a membership grant (admits its holder as a peer, writes nothing).
        let member = try? Grant(
            cluster: Fixture.cluster, issuer: Fixture.alice, issuee: Fixture.bob.publicKey, patterns: [],
            mayDelegate: false, notBefore: 0, expires: nil, nonce: [UInt8](repeating: 0, count: 16))
        #expect(member.map { try? Grant(decoding: $0.encoded) } != nil)
        #expect(member?.matches(try! Key("/a")) == false)
        #expect(throws: Refusal.self) {
            try Grant(cluster: Fixture.cluster, issuer: Fixture.alice, issuee: Fixture.bob.publicKey, patterns: (0..<17).map { try! Pattern("/p\($0)") },
                      mayDelegate: false, notBefore: 0, expires: nil, nonce: [UInt8](repeating: 0, count: 16))
        }
        // A grant that expires at or before it becomes valid is malformed; one millisecond after is not.
        for expires: UInt64 in [1_000, 999] {
            #expect(throws: Refusal.self) {
                try Grant(cluster: Fixture.cluster, issuer: Fixture.alice, issuee: Fixture.bob.publicKey, patterns: [try! Pattern("/a")],
                          mayDelegate: false, notBefore: 1_000, expires: expires, nonce: [UInt8](repeating: 0, count: 16))
            }
        }
        #expect(throws: Never.self) {
            try Grant(cluster: Fixture.cluster, issuer: Fixture.alice, issuee: Fixture.bob.publicKey, patterns: [try! Pattern("/a")],
                      mayDelegate: false, notBefore: 1_000, expires: 1_001, nonce: [UInt8](repeating: 0, count: 16))
        }
    }

    /// What Docs/protocol.md's layouts forbid is refused when decoding, before any signature is
    /// looked at: trailing bytes after a record or a revocation, a record kind other than 0 or 1,
    /// a tombstone that carries value bytes, a pool of more than 32 grants.
    @Test func decodingRefusesWhatTheLayoutsForbid() throws {
        let record = Fixture.record("/a", "x", by: Fixture.root)
        #expect(throws: Never.self) { try Record(decoding: record.encoded) }
        let kindOffset = "kvgossip/record/v1\u{0}".utf8.count + 32 + 2 + 2
        #expect(record.encoded[kindOffset] == 0, "the layout as the test reads it")
        var wrongKind = record.encoded
        wrongKind[kindOffset] = 2
        var tombstoneWithValue = record.encoded
        tombstoneWithValue[kindOffset] = 1
        let poolOffset = record.signedBytes.count + 64 + 4 + 1
        #expect(poolOffset == record.encoded.count - 1 && record.encoded[poolOffset] == 0, "an empty pool's count ends the record")
        var bigPool = record.encoded
        bigPool[poolOffset] = 33
        for (what, bytes) in [("trailing bytes", record.encoded + [0]), ("kind 2", wrongKind), ("a tombstone with a value", tombstoneWithValue), ("33 grants", bigPool)] {
            #expect(throws: (any Error).self, "\(what)") { try Record(decoding: bytes) }
        }
        let revocation = Revocation(cluster: Fixture.cluster, grant: Fixture.grant(Fixture.root, to: Fixture.alice, ["/a"]), revokedAt: 5, signer: Fixture.root)
        #expect(throws: Never.self) { try Revocation(decoding: revocation.encoded) }
        #expect(throws: (any Error).self) { try Revocation(decoding: revocation.encoded + [0]) }
    }

    /// Random and truncated input of each kind returns a reason and never traps.
    @Test(arguments: ["grant", "revocation", "record"])
    func fuzzedDecodingNeverCrashes(kind: String) {
        var rng = SeededRandom(seed: 42)
        let g = Fixture.grant(Fixture.root, to: Fixture.alice, ["/app/**"])
        let valid: [UInt8]
        switch kind {
        case "grant": valid = g.encoded
        case "revocation": valid = Revocation(cluster: Fixture.cluster, grant: g, revokedAt: 5, signer: Fixture.root).encoded
        default: valid = Fixture.record("/app/x", "hello", by: Fixture.alice, pool: [g]).encoded
        }
        func decode(_ bytes: [UInt8]) -> Bool {
            do {
                switch kind {
                case "grant": _ = try Grant(decoding: bytes)
                case "revocation": _ = try Revocation(decoding: bytes)
                default: _ = try Record(decoding: bytes)
                }
                return true
            } catch {
                #expect(!error.detail.isEmpty)
                return false
            }
        }
        #expect(decode(valid))
        for n in 0..<valid.count { #expect(!decode(Array(valid.prefix(n)))) }
        var refused = 0
        for _ in 0..<3000 {
            let n = Int.random(in: 0...400, using: &rng)
            if !decode(rng.bytes(n)) { refused += 1 }
        }
        for _ in 0..<2000 {
            var mutated = valid
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                mutated[Int.random(in: 0..<mutated.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            _ = decode(mutated)
        }
        #expect(refused == 3000)
    }
}

@Suite struct TextFormTests {
    @Test func publicKeyText() throws {
        let pk = Fixture.alice.publicKey
        #expect(pk.text.hasPrefix("ed25519:") && pk.text.count == 8 + 43)
        #expect(try PublicKey(text: pk.text) == pk)
        #expect(try PublicKey(text: " \(pk.text)\n") == pk)
        for bad in ["", "ed25519:", "ed25519:abc", "rsa:" + pk.text.dropFirst(8), pk.text + "A", pk.text + "=", String(pk.text.dropLast()) + "+"] {
            #expect(throws: KeyTextError.self) { try PublicKey(text: bad) }
        }
    }

    @Test func fingerprintIsSixteenHex() {
        #expect(Fixture.alice.publicKey.fingerprint.count == 16)
        #expect(Fixture.alice.publicKey.fingerprint != Fixture.bob.publicKey.fingerprint)
    }

    @Test func secretKeyFileRoundTripsAndRefusesOpenModes() throws {
        let text = SecretKeyFile.render(Fixture.alice)
        #expect(try SecretKeyFile.parse(text, mode: 0o600, path: "k").publicKey == Fixture.alice.publicKey)
        #expect(try SecretKeyFile.parse(text, mode: 0o400, path: "k").publicKey == Fixture.alice.publicKey)
        for mode: UInt32 in [0o640, 0o604, 0o644, 0o666] {
            #expect(throws: KeyTextError.self) { try SecretKeyFile.parse(text, mode: mode, path: "k") }
        }
        #expect(throws: KeyTextError.self) { try SecretKeyFile.parse("nonsense", mode: 0o600, path: "k") }
        // A file that is no key at all is named as such, whatever its mode: not told to chmod it.
        let notAKey = #expect(throws: KeyTextError.self) { try SecretKeyFile.parse("-----BEGIN KVGOSSIP GRANT-----", mode: 0o644, path: "g") }
        #expect(notAKey?.description.contains("g is not a kvgossip secret key file") == true, "\(String(describing: notAKey))")
    }

    @Test func base64URLVectors() {
        // RFC 4648 test vectors, unpadded.
        let cases = ["": "", "f": "Zg", "fo": "Zm8", "foo": "Zm9v", "foob": "Zm9vYg", "fooba": "Zm9vYmE", "foobar": "Zm9vYmFy"]
        for (plain, encoded) in cases {
            #expect(Base64URL.encode(Array(plain.utf8)) == encoded)
            #expect(Base64URL.decode(encoded) == Array(plain.utf8))
        }
        #expect(Base64URL.encode([0xfb, 0xff]) == "-_8")
        #expect(Base64URL.decode("Zh") == nil)  // non-zero trailing bits
        #expect(Base64URL.decode("Zg==") == nil)
        #expect(Base64URL.decode("Z") == nil)
    }

    @Test func armorHoldsSeveralBlocks() throws {
        let g1 = Fixture.grant(Fixture.root, to: Fixture.alice, ["/a/**"])
        let g2 = Fixture.grant(Fixture.alice, to: Fixture.bob, ["/a/b"])
        let text = "# proof chain\n" + Armor.render(.grant, g1.encoded) + Armor.render(.grant, g2.encoded)
        let blocks = try Armor.parse(text)
        #expect(blocks.map(\.kind) == [.grant, .grant])
        #expect(try Grant(decoding: blocks[1].bytes) == g2)
        #expect(throws: Refusal.self) { try Armor.parse("-----BEGIN KVGOSSIP GRANT-----\nabc\n") }
        #expect(throws: Refusal.self) { try Armor.parse("-----BEGIN KVGOSSIP THING-----\n-----END KVGOSSIP THING-----\n") }
    }

    /// Found by the `armor` fuzz target: "-" is a base64url digit, so a wrapped body line can start
    /// with "-----"; it was taken for a misplaced marker and the file refused.
    @Test func armorBodyLinesMayStartWithDashes() throws {
        let bytes = [UInt8](repeating: 0, count: 48) + [0xFB, 0xEF, 0xBE, 0xFB, 0xEF, 0xBE]
        let text = Armor.render(.grant, bytes)
        #expect(text.contains("\n--------\n"))
        #expect(try Armor.parse(text).map(\.bytes) == [bytes])
    }

    /// Found by the `armor` and `key-text` fuzz targets: Swift reads CRLF as one `Character`, so
    /// a file saved with CRLF line endings held no blocks, and a key file ending in CRLF was refused.
    @Test func crlfFilesReadAsLFFiles() throws {
        let grant = Fixture.grant(Fixture.root, to: Fixture.alice, ["/a/**"])
        let text = "# proof\n" + Armor.render(.grant, grant.encoded)
        let crlf = text.replacing("\n", with: "\r\n")
        #expect(crlf.utf8.count == text.utf8.count + text.filter { $0 == "\n" }.count)
        #expect(try Armor.parse(crlf) == Armor.parse(text))
        #expect(try Armor.parse(crlf).count == 1)
        let key = SecretKeyFile.render(Fixture.alice).replacing("\n", with: "\r\n")
        #expect(try SecretKeyFile.parse(key, mode: 0o600, path: "k").publicKey == Fixture.alice.publicKey)
        #expect(try PublicKey(text: Fixture.alice.publicKey.text + "\r\n") == Fixture.alice.publicKey)
    }
}
