import Testing
@testable import KVGossipCore

/// The test vectors printed in Docs/protocol.md. If an encoding changes, these fail, and the
/// document (and the format version in the domain tags) must change with it.
@Suite struct ProtocolVectorTests {
    static let rootSeed = [UInt8](repeating: 0x01, count: 32)
    static let writerSeed = [UInt8](repeating: 0x02, count: 32)
    static let root = SigningKey(seed: rootSeed)!
    static let writer = SigningKey(seed: writerSeed)!

    static var grant: Grant {
        try! Grant(
            cluster: root.publicKey, issuer: root, issuee: writer.publicKey, patterns: [try! Pattern("/app/**")],
            mayDelegate: false, notBefore: 1_795_737_600_000, expires: nil, nonce: [UInt8](repeating: 0xAB, count: 16))
    }

    static var record: Record {
        Record(
            cluster: root.publicKey, key: try! Key("/app/db/url"), kind: .value, value: Array("postgres://db2".utf8),
            timestamp: HLC(physicalMs: 1_795_737_600_123, counter: 0), signer: writer, pool: [grant])
    }

    @Test func keys() {
        #expect(Self.root.publicKey.text == "ed25519:iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w")
        #expect(Self.writer.publicKey.text == "ed25519:gTl3Dqh9F19Wo1Rmw0x-zMuNipG07jeiXfYPW4_Js5Q")
        #expect(Self.root.publicKey.fingerprint == "c5e21ab1c9f6022d")
    }

    @Test func grantVector() {
        #expect(Hex.encode(Self.grant.signedBytes) == """
            6b76676f737369702f6772616e742f7631008a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c\
            8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c8139770ea87d175f56a35466c34c7ecccb8d\
            8a91b4ee37a25df60f5b8fc9b39400000001a21a4d4000000000000000000000abababababababababababababababab0100\
            072f6170702f2a2a
            """)
        #expect(Hex.encode(Self.grant.signature.bytes) == """
            e1ab04a43826150e3ae9e3b37bd08b9f22a9357e6646a9f004f838ca1b5390d919baa07861eb5dcafef112379b24c7fd703a\
            cfcd13c6eb812bd46a8940be5406
            """)
        #expect(Self.grant.id.hex == "f6cffd4b5f8cd64da4eda3e9c4b35046007ee0752a537d77730d5025a5ba6f95")
    }

    @Test func recordVector() {
        #expect(Hex.encode(Self.record.signedBytes) == """
            6b76676f737369702f7265636f72642f7631008a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f\
            5c000b2f6170702f64622f75726c00db34f0e8f744063c84699d660f7ae60a3fcc9a8e7b9c780ad4f2fb32d925525f01a21a\
            4d407b00008139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394
            """)
        #expect(Hex.encode(Self.record.signature.bytes) == """
            f8e095dc74be0f4e68f8a2bd2b943c4adafa3b15688885a7bb5daea66c84f6b4a7806e5155f71faa426a4c1cd4a9e6efdbee\
            fb3a75d43516463cecfc465d410b
            """)
        #expect(Self.record.valueHash.hex == "db34f0e8f744063c84699d660f7ae60a3fcc9a8e7b9c780ad4f2fb32d925525f")
        #expect(Self.record.digest.hex == "eb8c28dbbb946b50806219f6b4da9adbc342bd0868138f257740ca91e9a0c4e0")
        #expect(Self.record.encoded.count == 446)
        #expect(try! Record(decoding: Self.record.encoded) == Self.record)
    }

    @Test func revocationVector() {
        let rev = Revocation(cluster: Self.root.publicKey, grantID: Self.grant.id, revokedAt: 1_795_737_700_000, signer: Self.root)
        #expect(Hex.encode(rev.signedBytes) == """
            6b76676f737369702f7265766f636174696f6e2f7631008a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf37488\
            01b40f6f5cf6cffd4b5f8cd64da4eda3e9c4b35046007ee0752a537d77730d5025a5ba6f95000001a21a4ec6a08a88e3dd74\
            09f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c
            """)
        #expect(Hex.encode(rev.signature.bytes) == """
            fcfe66632d4b333e50792ebb42fecbcacc9358668ad16d1331df680e8e6d4a458b68abebaace4af67f22f0d5af68f2c92240\
            4707fa984a1dd860c39c01b1b909
            """)
        #expect(rev.digest.hex == "3242268713606c75975e8fad14ded293b84a406421487b2d15d03e1913451ef9")
    }

    @Test func summaryVectors() {
        let e = SummaryEntries.entry(for: Self.record)
        #expect(e.id.hex == "33f5199ea9be3f29280103cbfc46da6ce86697542858f7471ed0c0f98168246a")
        #expect(e.digest.hex == "2da57dbdf922bb2b116082a36c501d82baedf84b00a06cac457909c32878aa45")
        #expect(SummaryEntries.treeHash(records: .zero, revocations: .zero).hex
            == "f828be3372c13700f5c65758f0be6ccc1609897a684f3c670cf5f01510d87d0a")
        let leaf = MerkleHashing.leafHash([e])
        #expect(leaf.hex == "c8df6e2e74ca8f0926b201c70f10d361042da89e6614e89ee8f0db7dc1317cb4")
        #expect(SummaryEntries.treeHash(records: leaf, revocations: .zero).hex
            == "e7e765c043195138e622e9064632c34a4fe3c97923e480dd058635e217a7ad54")
    }
}

/// The link handshake vector of Docs/protocol.md §Links: fixed key-exchange seeds, nonces, clock
/// and instance ids, so every frame and both stream keys are reproducible.
@Suite struct LinkVectorTests {
    static let clock: UInt64 = 1_795_737_600_000

    static func run() throws -> (frames: [[UInt8]], initiator: LinkHandshake.Established, responder: LinkHandshake.Established) {
        let root = ProtocolVectorTests.root, writer = ProtocolVectorTests.writer
        var initiator = LinkHandshake(
            role: .initiator, cluster: root.publicKey,
            credentials: LinkCredentials(signingKey: writer, name: "host-a", syncPort: 7947, credential: [ProtocolVectorTests.grant], instance: [UInt8](repeating: 0xA1, count: 16)),
            secret: nil, ephemeral: KeyExchangeKeyPair(seed: [UInt8](repeating: 0x11, count: 32)), nonce: [UInt8](repeating: 0x21, count: 32))
        var responder = LinkHandshake(
            role: .responder, cluster: root.publicKey,
            credentials: LinkCredentials(signingKey: root, name: "host-b", syncPort: 7947, credential: [], instance: [UInt8](repeating: 0xB2, count: 16)),
            secret: nil, ephemeral: KeyExchangeKeyPair(seed: [UInt8](repeating: 0x12, count: 32)), nonce: [UInt8](repeating: 0x22, count: 32))
        let hello = initiator.start(nowMs: clock)
        guard case .send(let serverHello) = try responder.receive(hello, nowMs: clock),
            case .established(let a, let auth?) = try initiator.receive(serverHello, nowMs: clock),
            case .established(let b, nil) = try responder.receive(auth, nowMs: clock)
        else { throw Refusal(.malformed, "the vector handshake did not complete") }
        return ([hello, serverHello, auth], a, b)
    }

    @Test func handshakeVector() throws {
        let (frames, a, b) = try Self.run()
        #expect(Hex.encode(frames[0]) == """
            6b76676f737369702f6c696e6b2f76320001008a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c\
            cb8403d9e0857b55c47ff233b6b4379588c9644aababb2588027bf7188b982172121212121212121212121212121212121212121\
            212121212121212121212121000001a21a4d4000
            """)
        #expect(frames.map(\.count) == [123, 246, 367])
        #expect(frames.map { Hash256.of($0).hex } == [
            "45e2405a317137cd2cc05639655b53b170ca25b8f5951c3d85bd0af3086a0d80",
            "02c52bf3d5b516da37880883fc12bed9ac4ab0add09df4ff75472f2ab79eef50",
            "fa5225009879a06638b494841984115a75443edca9018edd266692f430f243ac",
        ])
        #expect(Hex.encode(a.sendKey) == "344b158747accf844c2580a7660b723663fbf30f0fd8291cc00b2f80b6abb5e5")
        #expect(Hex.encode(a.receiveKey) == "906f1ec178a00eb50b8198f220c95df67085845efc9063de483e997b9a332ca6")
        #expect(a.sendKey == b.receiveKey && a.receiveKey == b.sendKey)
        #expect(a.peer.name == "host-b" && b.peer.credential == [ProtocolVectorTests.grant])
    }
}
