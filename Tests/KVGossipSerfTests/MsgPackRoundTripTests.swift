import Testing
@testable import KVGossipSerf

/// Every type and every size boundary: the encoder picks the smallest form and the decoder reads it back.
struct MsgPackRoundTripTests {
    static let unsignedCases: [(UInt64, [UInt8])] = [
        (0, [0x00]), (127, [0x7f]),
        (128, [0xcc, 0x80]), (255, [0xcc, 0xff]),
        (256, [0xcd, 0x01, 0x00]), (65535, [0xcd, 0xff, 0xff]),
        (65536, [0xce, 0x00, 0x01, 0x00, 0x00]), (4_294_967_295, [0xce, 0xff, 0xff, 0xff, 0xff]),
        (4_294_967_296, [0xcf, 0, 0, 0, 1, 0, 0, 0, 0]), (UInt64.max, [0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
    ]

    static let negativeCases: [(Int64, [UInt8])] = [
        (-1, [0xff]), (-32, [0xe0]),
        (-33, [0xd0, 0xdf]), (-128, [0xd0, 0x80]),
        (-129, [0xd1, 0xff, 0x7f]), (-32768, [0xd1, 0x80, 0x00]),
        (-32769, [0xd2, 0xff, 0xff, 0x7f, 0xff]), (Int64(Int32.min), [0xd2, 0x80, 0x00, 0x00, 0x00]),
        (Int64(Int32.min) - 1, [0xd3, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff]),
        (Int64.min, [0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]),
    ]

    private func roundTrip(_ value: MsgPackValue) throws -> [UInt8] {
        let bytes = MsgPackEncoder.encode(value)
        let outcome = try MsgPackDecoder().decode(bytes)
        #expect(outcome == .value(value, consumed: bytes.count))
        return bytes
    }

    @Test(arguments: unsignedCases)
    func unsignedBoundaries(value: UInt64, expected: [UInt8]) throws {
        #expect(try roundTrip(.uint(value)) == expected)
        if value <= UInt64(Int64.max) { #expect(try roundTrip(.int(Int64(value))) == expected) }
    }

    @Test(arguments: negativeCases)
    func negativeBoundaries(value: Int64, expected: [UInt8]) throws {
        #expect(try roundTrip(.int(value)) == expected)
    }

    @Test func signedWireFormsDecodeToTheSameNumber() throws {
        // Other encoders may use signed forms for positive numbers; they must still read as numbers.
        for bytes: [UInt8] in [[0xd0, 0x05], [0xd1, 0x00, 0x05], [0xd2, 0, 0, 0, 5], [0xd3, 0, 0, 0, 0, 0, 0, 0, 5]] {
            guard case .value(let v, _) = try MsgPackDecoder().decode(bytes) else { Issue.record("incomplete"); continue }
            #expect(v == .uint(5))
            #expect(v.uint64Value == 5 && v.int64Value == 5)
        }
        #expect(MsgPackValue.int(-1) != .uint(UInt64.max))
    }

    @Test(arguments: [(0, 0xa0, 1), (31, 0xbf, 1), (32, 0xd9, 2), (255, 0xd9, 2), (256, 0xda, 3), (65535, 0xda, 3), (65536, 0xdb, 5)])
    func stringLengths(length: Int, typeByte: UInt8, headerLength: Int) throws {
        let bytes = try roundTrip(.string(String(repeating: "é", count: length / 2) + String(repeating: "x", count: length % 2)))
        #expect(bytes[0] == typeByte)
        #expect(bytes.count == headerLength + length)
    }

    @Test(arguments: [(0, 0xc4, 2), (255, 0xc4, 2), (256, 0xc5, 3), (65535, 0xc5, 3), (65536, 0xc6, 5)])
    func binaryLengths(length: Int, typeByte: UInt8, headerLength: Int) throws {
        let bytes = try roundTrip(.binary((0 ..< length).map { UInt8(truncatingIfNeeded: $0) }))
        #expect(bytes[0] == typeByte)
        #expect(bytes.count == headerLength + length)
    }

    @Test(arguments: [(0, 0x90, 1), (15, 0x9f, 1), (16, 0xdc, 3), (65535, 0xdc, 3), (65536, 0xdd, 5)])
    func arrayLengths(count: Int, typeByte: UInt8, headerLength: Int) throws {
        let bytes = try roundTrip(.array((0 ..< count).map { .uint(UInt64($0 % 100)) }))
        #expect(bytes[0] == typeByte)
        #expect(bytes.count == headerLength + count)
    }

    @Test(arguments: [(0, 0x80, 1), (15, 0x8f, 1), (16, 0xde, 3), (65535, 0xde, 3), (65536, 0xdf, 5)])
    func mapLengths(count: Int, typeByte: UInt8, headerLength: Int) throws {
        let bytes = try roundTrip(.map((0 ..< count).map { (.uint(UInt64($0 % 128)), .null) }))
        #expect(bytes[0] == typeByte)
        #expect(bytes.count == headerLength + 2 * count)
    }

    @Test func scalars() throws {
        #expect(try roundTrip(.null) == [0xc0])
        #expect(try roundTrip(.bool(false)) == [0xc2])
        #expect(try roundTrip(.bool(true)) == [0xc3])
        #expect(try roundTrip(.float(1.5)) == [0xca, 0x3f, 0xc0, 0x00, 0x00])
        #expect(try roundTrip(.double(1.5)) == [0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0])
        for f: Float in [0, -0.0, .infinity, -.infinity, .nan, .leastNonzeroMagnitude, .greatestFiniteMagnitude] {
            _ = try roundTrip(.float(f))
        }
        for d: Double in [0, -0.0, .infinity, .nan, .pi, .leastNormalMagnitude, -.greatestFiniteMagnitude] {
            _ = try roundTrip(.double(d))
        }
    }

    @Test func nestedValuesKeepMapOrder() throws {
        let value: MsgPackValue = [
            "z": [1, -2, "three", nil, true, 4.5],
            "a": ["inner": .binary([1, 2, 3]), "empty": [:], "list": []],
            .uint(7): .float(0.25),
        ]
        let bytes = try roundTrip(value)
        #expect(bytes[0] == 0x83)
        #expect(bytes[1 ... 2] == [0xa1, UInt8(ascii: "z")])  // first key first
        #expect(value["a"]?["inner"]?.binaryValue == [1, 2, 3])
    }
}
