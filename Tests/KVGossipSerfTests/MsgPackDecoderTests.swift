import Testing
@testable import KVGossipSerf

/// Strictness, limits and incremental behaviour of the decoder.
struct MsgPackDecoderTests {
    private func decode(_ bytes: [UInt8], limits: MsgPackDecoder.Limits = .init()) throws(MsgPackError) -> MsgPackDecoder.Outcome {
        try MsgPackDecoder(limits: limits).decode(bytes)
    }

    @Test func knownVectors() throws {
        // Spec examples and the handshake Serf was seen to send and accept (Docs/serf-rpc.md §Observed bytes).
        let handshake = [UInt8](hex: "82a7436f6d6d616e64a968616e647368616b65a353657100")
        #expect(MsgPackEncoder.encode(["Command": "handshake", "Seq": 0]) == handshake)
        #expect(try decode(handshake) == .value(["Command": "handshake", "Seq": 0], consumed: handshake.count))
        #expect(MsgPackEncoder.encode(["Version": 1]) == [UInt8](hex: "81a756657273696f6e01"))
        #expect(MsgPackEncoder.encode(["compact": true, "schema": 0]) == [UInt8](hex: "82a7636f6d70616374c3a6736368656d6100"))
        #expect(MsgPackEncoder.encode([1, [2, 3]]) == [0x92, 0x01, 0x92, 0x02, 0x03])
        #expect(MsgPackEncoder.encode(.string(String(repeating: "a", count: 32))).prefix(2) == [0xd9, 0x20])
    }

    @Test func reservedByteIsMalformed() {
        #expect(throws: MsgPackError.reservedByte(offset: 0)) { try decode([0xc1]) }
        #expect(throws: MsgPackError.reservedByte(offset: 2)) { try decode([0x92, 0x01, 0xc1]) }
    }

    @Test(arguments: [UInt8(0xc7), 0xc8, 0xc9, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8])
    func extensionsAreRefused(type: UInt8) {
        #expect(throws: MsgPackError.unsupportedExtension(typeByte: type, offset: 0)) { try decode([type, 0x01, 0x01, 0x00]) }
    }

    @Test func lengthLimitAppliesBeforeTheBytesArrive() throws {
        let limits = MsgPackDecoder.Limits(maxLength: 1000)
        // A 4 GiB string header alone is enough to refuse, without waiting for (or allocating) data.
        #expect(throws: MsgPackError.lengthLimitExceeded(length: 0xffff_ffff, limit: 4 << 20, offset: 0)) {
            try decode([0xdb, 0xff, 0xff, 0xff, 0xff])
        }
        #expect(throws: MsgPackError.self) { try decode([0xc5, 0x03, 0xe9], limits: limits) }
        #expect(throws: MsgPackError.self) { try decode([0xdc, 0x03, 0xe9], limits: limits) }
        #expect(throws: MsgPackError.self) { try decode([0xdf, 0x00, 0x01, 0x00, 0x00], limits: limits) }
        #expect(try decode([0xc5, 0x03, 0xe8], limits: limits) == .needMoreData)
    }

    @Test func nestingLimit() throws {
        let limits = MsgPackDecoder.Limits(maxDepth: 64)
        let deepest = [UInt8](repeating: 0x91, count: 63) + [0x90]  // 64 levels
        guard case .value = try decode(deepest, limits: limits) else { Issue.record("64 levels must decode"); return }
        let tooDeep = [UInt8](repeating: 0x91, count: 64) + [0x90]
        #expect(throws: MsgPackError.nestingLimitExceeded(limit: 64, offset: 64)) { try decode(tooDeep, limits: limits) }
        // A hostile stream of nested headers is refused long before the stack is at risk.
        #expect(throws: MsgPackError.self) { try decode([UInt8](repeating: 0x81, count: 100_000)) }
    }

    @Test func valueSizeLimit() throws {
        let limits = MsgPackDecoder.Limits(maxValueBytes: 100)
        let big = MsgPackEncoder.encode(.array((0 ..< 60).map { _ in .uint(1000) }))  // 183 bytes
        #expect(throws: MsgPackError.valueTooLarge(limit: 100)) { try decode(big, limits: limits) }
        #expect(throws: MsgPackError.valueTooLarge(limit: 100)) { try decode(Array(big.prefix(120)), limits: limits) }
        #expect(try decode(Array(big.prefix(90)), limits: limits) == .needMoreData)
    }

    @Test func invalidUTF8IsRefused() {
        #expect(throws: MsgPackError.invalidUTF8(offset: 0)) { try decode([0xa2, 0xc3, 0x28]) }
    }

    @Test func emptyInputNeedsMoreData() throws {
        #expect(try decode([]) == .needMoreData)
    }

    @Test func consumesExactlyOneValueOfSeveral() throws {
        // Serf sends objects back to back with no delimiter.
        let stream = MsgPackEncoder.encode(["Seq": 1, "Error": ""]) + MsgPackEncoder.encode(["Members": []]) + [0x92, 0x01]
        let (values, consumed) = try MsgPackDecoder().decodeAll(stream)
        #expect(values == [["Seq": 1, "Error": ""], ["Members": []]])
        #expect(consumed == stream.count - 2)
    }

    @Test func everyPrefixOfAValueNeedsMoreData() throws {
        let value: MsgPackValue = ["Name": "n1", "Addr": .binary([127, 0, 0, 1]), "Port": 7946, "Tags": ["kvg": "7001"], "F": .double(2.5)]
        let bytes = MsgPackEncoder.encode(value)
        for n in 0 ..< bytes.count {
            #expect(try decode(Array(bytes.prefix(n))) == .needMoreData, "prefix \(n)")
        }
        #expect(try decode(bytes + [0xc1]) == .value(value, consumed: bytes.count))
    }
}
