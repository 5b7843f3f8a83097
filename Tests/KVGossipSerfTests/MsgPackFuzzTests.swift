import Testing
@testable import KVGossipSerf
import KVGossipTestSupport

/// Seeded random inputs: the decoder never crashes, never reads past its input, and answers
/// need-more-data for every truncation of a valid value.
struct MsgPackFuzzTests {
    private let limits = MsgPackDecoder.Limits(maxLength: 1 << 16, maxDepth: 16, maxValueBytes: 1 << 20)

    @Test(arguments: [UInt64(1), 2, 3, 4])
    func randomBytesNeverCrash(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        let decoder = MsgPackDecoder(limits: limits)
        var outcomes = (values: 0, needMore: 0, errors: 0)
        for _ in 0 ..< 2500 {
            let length = Int.random(in: 0 ... 48, using: &rng)
            // Bias towards the interesting type bytes so containers and headers are exercised.
            let bytes = (0 ..< length).map { _ in
                Bool.random(using: &rng) ? UInt8.random(in: 0xc0 ... 0xdf, using: &rng) : UInt8.random(in: 0 ... 255, using: &rng)
            }
            do {
                switch try decoder.decode(bytes) {
                case .value(_, let consumed):
                    #expect(consumed >= 1 && consumed <= bytes.count)
                    outcomes.values += 1
                case .needMoreData:
                    outcomes.needMore += 1
                }
            } catch {
                outcomes.errors += 1
            }
        }
        #expect(outcomes.values > 0 && outcomes.needMore > 0 && outcomes.errors > 0)
    }

    @Test(arguments: [UInt64(11), 12, 13])
    func truncatedValidValuesNeedMoreData(seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        let decoder = MsgPackDecoder(limits: limits)
        for _ in 0 ..< 300 {
            let value = randomValue(depth: 0, using: &rng)
            let bytes = MsgPackEncoder.encode(value)
            #expect(try decoder.decode(bytes) == .value(value, consumed: bytes.count))
            let cuts = Set((0 ..< 8).map { _ in Int.random(in: 0 ..< bytes.count, using: &rng) })
            for cut in cuts {
                #expect(try decoder.decode(Array(bytes.prefix(cut))) == .needMoreData)
            }
        }
    }

    @Test(arguments: [UInt64(21), 22])
    func mutatedValidValuesNeverCrash(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        let decoder = MsgPackDecoder(limits: limits)
        for _ in 0 ..< 1500 {
            var bytes = MsgPackEncoder.encode(randomValue(depth: 0, using: &rng))
            for _ in 0 ..< Int.random(in: 1 ... 3, using: &rng) {
                bytes[Int.random(in: 0 ..< bytes.count, using: &rng)] = UInt8.random(in: 0 ... 255, using: &rng)
            }
            if Bool.random(using: &rng) { bytes = Array(bytes.prefix(Int.random(in: 0 ... bytes.count, using: &rng))) }
            if case .value(_, let consumed)? = try? decoder.decode(bytes) {
                #expect(consumed <= bytes.count)
            }
        }
    }

    private func randomValue(depth: Int, using rng: inout SeededRandom) -> MsgPackValue {
        let kinds = depth >= 4 ? 8 : 10
        switch Int.random(in: 0 ..< kinds, using: &rng) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &rng))
        case 2: return .int(Int64.random(in: Int64.min ... -1, using: &rng) >> UInt64.random(in: 0 ... 63, using: &rng))
        case 3: return .uint(UInt64.random(in: 0 ... .max, using: &rng) >> UInt64.random(in: 0 ... 63, using: &rng))
        case 4: return .float(Float(bitPattern: UInt32.random(in: 0 ... .max, using: &rng)))
        case 5: return .double(Double(bitPattern: UInt64.random(in: 0 ... .max, using: &rng)))
        case 6: return .string(String((0 ..< Int.random(in: 0 ... 300, using: &rng)).map { _ in "aé€😀".randomElement(using: &rng)! }))
        case 7: return .binary((0 ..< Int.random(in: 0 ... 300, using: &rng)).map { _ in UInt8.random(in: 0 ... 255, using: &rng) })
        case 8: return .array((0 ..< Int.random(in: 0 ... 20, using: &rng)).map { _ in randomValue(depth: depth + 1, using: &rng) })
        default:
            return .map((0 ..< Int.random(in: 0 ... 20, using: &rng)).map { _ in
                (randomValue(depth: depth + 1, using: &rng), randomValue(depth: depth + 1, using: &rng))
            })
        }
    }
}
